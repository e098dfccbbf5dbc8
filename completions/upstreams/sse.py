"""Reading a provider's server-sent events as whole frames, for the kinds whose events are typed (`event:` and
a JSON `data:`): Anthropic's Messages and OpenAI's Responses streams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import urllib3


def frames(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The whole SSE frames (`event:` and `data:` lines) of a stream, as they arrive."""
    if response.chunked and response.supports_chunked_reads():
        chunks = response.read_chunked(decode_content=True)
    else:
        chunks = iter(lambda: response.read1(65536), b"")
    buffer = b""
    for chunk in chunks:
        buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            if frame.strip():
                yield frame


def frame_data(frame: bytes) -> dict | None:
    """A frame's `data:` as a JSON object, or None when it holds none."""
    payload = b"\n".join(line[5:].lstrip(b" ") for line in frame.split(b"\n") if line.startswith(b"data:"))
    try:
        data = json.loads(payload) if payload else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def data_frames(response: urllib3.BaseHTTPResponse) -> Iterator[dict]:
    """A stream's events as their parsed data; frames without a JSON object are skipped."""
    for frame in frames(response):
        data = frame_data(frame)
        if data is not None:
            yield data
