"""Reading a provider's event stream: one network read at a time, its HTTP chunk framing removed here.

This is the relay's read side, the one speed trick of the upstream kinds (ARCHITECTURE.md, "A stream is
relayed as bytes"). urllib3's `read_chunked` costs a generator step, a `readline` and two `_safe_read`s
per HTTP chunk inside an error-catching context manager, and providers send one chunk per event. Here
`body_pieces` takes whatever the socket holds (up to 64 KiB, one `read1`) and strips the framing with
bytes operations, so events that arrive together cost one pass. Errors are urllib3's, as its own
reader raises them: a read timeout is `ReadTimeoutError`, a connection gone or a framing it cannot read
is `ProtocolError`. Once the last chunk is read, the response is closed the way http.client closes a
finished one, so the connection goes back to the pool for the next call.

A response this cannot read raw (compressed, not chunked, or not over http.client) is read through
urllib3 as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError

READ_SIZE = 65536
_CRLF = b"\r\n"


def body_pieces(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The response body as it arrives: one piece per network read, without HTTP's chunk framing."""
    original = getattr(response, "_original_response", None)
    reader = getattr(original, "fp", None)
    if response.chunked and reader is not None and not response.headers.get("content-encoding"):
        yield from _dechunked(original, reader)
    elif response.chunked and response.supports_chunked_reads():
        yield from response.read_chunked(decode_content=True)
    else:
        yield from iter(lambda: response.read1(READ_SIZE), b"")


def _read(reader) -> bytes:
    try:
        data = reader.read1(READ_SIZE)
    except TimeoutError:
        raise ReadTimeoutError(None, None, "Read timed out.") from None
    except (OSError, ValueError) as exc:  # ValueError: the reader was closed under us (shutdown, close)
        raise ProtocolError("Connection broken while reading the stream", exc) from exc
    if not data:
        raise ProtocolError("Response ended prematurely")
    return data


def _dechunked(original, reader) -> Iterator[bytes]:
    pending = b""  # a chunk-size line (or the CRLF after a chunk) cut by the end of a read
    left = 0  # bytes of the current chunk still to come
    skip = 0  # bytes of the CRLF after the current chunk still to skip
    while True:
        data = _read(reader)
        if pending:
            data, pending = pending + data, b""
        out = []
        at, end = 0, len(data)
        while at < end:
            if left:
                take = min(left, end - at)
                out.append(data if take == end else data[at : at + take])
                at += take
                left -= take
                skip = 0 if left else 2
                continue
            if skip:
                if end - at < skip:  # half a CRLF: the rest comes with the next read
                    pending = data[at:]
                    break
                if data[at : at + skip] != _CRLF[2 - skip :]:
                    raise ProtocolError("Invalid chunk framing in the stream")
                at += skip
                skip = 0
                continue
            line_end = data.find(_CRLF, at)
            if line_end < 0:
                pending = data[at:]
                if len(pending) > 1024:
                    raise ProtocolError("Invalid chunk length in the stream")
                break
            try:
                size = int(data[at:line_end].split(b";", 1)[0], 16)
            except ValueError:
                raise ProtocolError("Invalid chunk length in the stream") from None
            at = line_end + 2
            if size == 0:
                # Finished before the last yield: a reader that stops at the answer's last event (`[DONE]`)
                # leaves nothing of the response unread.
                _finish(original, reader, data[at:])
                if out:
                    yield b"".join(out)
                return
            left = size
        if out:
            yield out[0] if len(out) == 1 else b"".join(out)


def _finish(original, reader, rest: bytes) -> None:
    """Read the trailer section after the last chunk (an empty line, usually), then close as http.client does."""
    while not (rest.startswith(_CRLF) or b"\r\n\r\n" in rest):
        rest += _read(reader)
    # http.client's own end of a chunked body: the socket stays open, the connection can serve the next call.
    original._close_conn()


def frames(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The whole SSE frames (`event:` and `data:` lines) of a stream, as they arrive, for the kinds whose events
    are typed (`event:` and a JSON `data:`): Anthropic's Messages and OpenAI's Responses streams."""
    buffer = b""
    for chunk in body_pieces(response):
        buffer += chunk
        if b"\r" in buffer:  # on the whole buffer: a read may end between a CR and its LF
            buffer = buffer.replace(b"\r\n", b"\n")
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
