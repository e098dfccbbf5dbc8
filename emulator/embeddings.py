"""The emulator's embeddings: POST .../v1/embeddings answered with deterministic vectors.

A documented, deterministic contract:

* Each input (a string, or an array of token ids) gets a vector of ``dimensions`` floats (default
  ``DEFAULT_DIMENSIONS`` = 8, at most ``MAX_DIMENSIONS``): SHAKE-256 of the input's compact JSON
  gives 4 bytes per component, read as an unsigned little-endian integer and mapped onto [-1, 1];
  the vector is then scaled to unit length and each component rounded to float32. The same input
  always gets the same vector, whatever else is in the request.
* ``encoding_format=base64``: each vector's float32 components packed little-endian and
  base64-encoded, as OpenAI does; ``float`` (the default): a JSON array of the same float32 values.
* ``prompt_tokens = total_tokens`` = the words of each string input (``len(text.split())``) plus the
  length of each token-id array. That never exceeds the request's byte length, which the router's
  hold relies on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from typing import Any

from emulator.core import EMBEDDING_MODEL, BadRequest, Reply, _fail_mode, _fail_status, count_words, dumps, error_reply

DEFAULT_DIMENSIONS = 8
MAX_DIMENSIONS = 4096
MAX_INPUTS = 2048  # OpenAI's limit; with MAX_DIMENSIONS it bounds a reply's size


def _inputs(value: Any) -> list[str | list[int]]:
    """The request's inputs, one item per vector; raises BadRequest."""
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        return [value]
    if not isinstance(value, list) or not value:
        raise BadRequest("'input' must be a non-empty string or array.", "input")
    if len(value) > MAX_INPUTS:
        raise BadRequest(f"'input' may hold at most {MAX_INPUTS} items.", "input")
    for item in value:
        strings = isinstance(item, str) and item
        tokens = isinstance(item, list) and item and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        if not (strings or tokens):
            raise BadRequest("Each 'input' item must be a non-empty string or array of token ids.", "input")
    return value


def input_tokens(item: str | list[int]) -> int:
    """Tokens of one input per the module docstring's rule."""
    return count_words(item) if isinstance(item, str) else len(item)


def vector(item: str | list[int], dimensions: int) -> list[float]:
    """The deterministic unit vector of one input, its components float32 values."""
    seed = json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
    raw = hashlib.shake_256(seed).digest(4 * dimensions)
    values = [n / 0x7FFFFFFF - 1.0 for n in struct.unpack(f"<{dimensions}I", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


def encode_base64(values: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def embeddings_body(body: dict[str, Any]) -> dict[str, Any]:
    """The answer to a validated request body; raises BadRequest."""
    items = _inputs(body.get("input"))
    dimensions = body.get("dimensions")
    if dimensions is None:
        dimensions = DEFAULT_DIMENSIONS
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= MAX_DIMENSIONS:
        raise BadRequest(f"'dimensions' must be an integer between 1 and {MAX_DIMENSIONS}.", "dimensions")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    model = body.get("model") or EMBEDDING_MODEL
    if not isinstance(model, str):
        raise BadRequest("'model' must be a string.", "model")
    data = []
    for index, item in enumerate(items):
        values = vector(item, dimensions)
        embedding: Any = encode_base64(values) if encoding == "base64" else values
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(input_tokens(item) for item in items)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def embeddings_reply(raw: bytes, fail_mode: str | None = None) -> Reply:
    """Full handling of one embeddings request body (auth is the adapter's job)."""
    try:
        status = _fail_status(_fail_mode(fail_mode))
        if status:
            return error_reply(status)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"We could not parse the JSON body of your request: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        return Reply(200, dumps(embeddings_body(body)))
    except BadRequest as exc:
        return error_reply(400, str(exc), param=exc.param)
