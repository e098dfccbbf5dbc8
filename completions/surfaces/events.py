"""Named server-sent events (`event:` and `data:` lines), as Messages and Responses stream them.

A stream's repeated events (a text delta, an arguments fragment) are written from bytes rendered once per
content block, with only the fragment's JSON string (and Responses' sequence number) put in: no dict per
chunk, no whole-object dump. The bytes are exactly what the compact dump of the same object writes
(`json_string` is the encoder's own string escaping), which tests/completions/test_stream_events.py holds
them to.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

from core import exactjson

# One encoder for the payloads that hold no Decimal: json.dumps would build one per call.
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_string(text: str) -> bytes:
    """`text` as a JSON string, as the compact dump writes it inside an object."""
    return encode_basestring(text).encode()


def json_bytes(value: Any) -> bytes:
    """A payload without money (no Decimal) as compact JSON."""
    return _compact(value).encode()


def named(name: str, data: bytes) -> bytes:
    """One event: its name and its JSON payload."""
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def exact(name: str, data: dict[str, Any]) -> bytes:
    """One event whose payload carries money: its Decimals as exact numbers."""
    return named(name, exactjson.dumps_bytes(data))
