"""OpenAI's published response schemas (openai.schema.json, see README.md) and the checks built on them."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache
from pathlib import Path

import requests
from jsonschema import Draft202012Validator

SCHEMA_FILE = Path(__file__).with_name("openai.schema.json")


@cache
def _validator(component: str) -> Draft202012Validator:
    bundle = json.loads(SCHEMA_FILE.read_text())
    return Draft202012Validator({"$defs": bundle["$defs"], "$ref": f"#/$defs/{component}"})


def assert_matches(component: str, instance: object) -> None:
    """Fail with every violation when `instance` is not a valid `component` of OpenAI's spec."""
    errors = sorted(_validator(component).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, (
        f"not a valid {component}:\n"
        + "\n".join(f"  at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
        + f"\n{json.dumps(instance)[:2000]}"
    )


def sse_chunks(response: requests.Response) -> list[dict]:
    """The JSON payloads of a streamed response's `data:` events, up to `[DONE]` (which must end it); numbers
    with a fraction are read as Decimal, so a cost compares exactly."""
    assert response.headers["content-type"].startswith("text/event-stream"), response.text[:500]
    chunks = []
    done = False
    for line in response.iter_lines(decode_unicode=True):
        if not line.startswith("data:"):
            continue  # blank separators, SSE comments (keep-alives)
        data = line.removeprefix("data:").strip()
        assert not done, f"an event after [DONE]: {data}"
        if data == "[DONE]":
            done = True
        else:
            chunks.append(json.loads(data, parse_float=Decimal))
    assert done, "the stream did not end with data: [DONE]"
    return chunks
