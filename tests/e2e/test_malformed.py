"""Malformed chat completion bodies: each is a 400 in OpenAI's shape naming the field, never a 5xx."""

from __future__ import annotations

import json

import requests

from completions.models import Generation

from .conftest import Shop

DROP = object()
HI = [{"role": "user", "content": "hi"}]


def body_with(model: str, fields: dict) -> bytes:
    body = {"model": model, "messages": HI}
    body.update(fields)
    return json.dumps({name: value for name, value in body.items() if value is not DROP}).encode()


# (case id, the body's fields over a valid one — or raw bytes, with {model} filled in —, the expected `param`)
CASES = [
    ("invalid JSON", b'{"model": "{model}", "messages": [', None),
    ("empty body", b"", None),
    ("array body", b"[1, 2]", None),
    ("string body", b'"hello"', None),
    ("not UTF-8", b'{"model": "\xff\xfe"}', None),
    ("NaN is not JSON", b'{"model": "{model}", "messages": [{"role": "user", "content": "hi"}], "seed": NaN}', None),
    (
        "Infinity is not JSON",
        b'{"model": "{model}", "messages": [{"role": "user", "content": "hi"}], "x": Infinity}',
        None,
    ),
    ("lone surrogate", b'{"model": "{model}", "messages": [{"role": "user", "content": "\\ud800"}]}', None),
    (
        "lone surrogate in user",
        b'{"model": "{model}", "messages": [{"role": "user", "content": "x"}], "user": "\\udfff"}',
        None,
    ),
    (
        "nested too deeply",
        b'{"model": "{model}", "messages": [{"role": "user", "content": "x"}], "x": '
        + b"[" * 5000
        + b"]" * 5000
        + b"}",
        None,
    ),
    ("model missing", {"model": DROP}, "model"),
    ("model empty", {"model": ""}, "model"),
    ("model blank", {"model": "  "}, "model"),
    ("model not a string", {"model": 5}, "model"),
    ("model with a NUL", {"model": "a\u0000b"}, "model"),
    ("messages missing", {"messages": DROP}, "messages"),
    ("messages empty", {"messages": []}, "messages"),
    ("messages not a list", {"messages": "hi"}, "messages"),
    ("message not an object", {"messages": ["hi"]}, "messages[0]"),
    ("second message not an object", {"messages": [*HI, None]}, "messages[1]"),
    ("bad role", {"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ("role missing", {"messages": [{"content": "hi"}]}, "messages[0].role"),
    ("user content missing", {"messages": [{"role": "user"}]}, "messages[0].content"),
    ("content not text or parts", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    (
        "content part without type",
        {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
        "messages[0].content[0]",
    ),
    ("assistant without content or tool calls", {"messages": [*HI, {"role": "assistant"}]}, "messages[1].content"),
    (
        "assistant tool_calls not a list",
        {"messages": [{"role": "assistant", "tool_calls": "x"}]},
        "messages[0].tool_calls",
    ),
    ("tool message without tool_call_id", {"messages": [{"role": "tool", "content": "5"}]}, "messages[0].tool_call_id"),
    ("temperature below 0", {"temperature": -0.1}, "temperature"),
    ("temperature above 2", {"temperature": 2.1}, "temperature"),
    ("temperature a string", {"temperature": "1"}, "temperature"),
    ("temperature a boolean", {"temperature": True}, "temperature"),
    ("top_p above 1", {"top_p": 1.5}, "top_p"),
    ("presence_penalty above 2", {"presence_penalty": 2.5}, "presence_penalty"),
    ("frequency_penalty below -2", {"frequency_penalty": -2.5}, "frequency_penalty"),
    ("max_tokens 0", {"max_tokens": 0}, "max_tokens"),
    ("max_tokens negative", {"max_tokens": -1}, "max_tokens"),
    ("max_tokens fractional", {"max_tokens": 1.5}, "max_tokens"),
    ("max_tokens a string", {"max_tokens": "10"}, "max_tokens"),
    ("max_tokens a boolean", {"max_tokens": True}, "max_tokens"),
    ("max_completion_tokens 0", {"max_completion_tokens": 0}, "max_completion_tokens"),
    ("stream a string", {"stream": "yes"}, "stream"),
    ("stream a number", {"stream": 1}, "stream"),
    ("n 0", {"n": 0}, "n"),
    ("n above 128", {"n": 129}, "n"),
    ("n fractional", {"n": 1.5}, "n"),
    ("stop a number", {"stop": 5}, "stop"),
    ("stop a list of numbers", {"stop": [5]}, "stop"),
    ("tools an object", {"tools": {}}, "tools"),
    ("functions an object", {"functions": {}}, "functions"),
    ("response_format a string", {"response_format": "json"}, "response_format"),
    ("stream_options a list", {"stream_options": []}, "stream_options"),
    ("metadata a list", {"metadata": []}, "metadata"),
    ("logit_bias a list", {"logit_bias": []}, "logit_bias"),
    ("user a number", {"user": 5}, "user"),
]


def test_every_malformed_body_is_a_400_naming_the_field(router: str, shop: Shop):
    # One test for the whole table: every case needs only the live router, not a database of its own.
    model = shop.model.public_id
    wrong = []
    for case, fields, param in CASES:
        raw = fields.replace(b"{model}", model.encode()) if isinstance(fields, bytes) else body_with(model, fields)
        response = requests.post(
            f"{router}/chat/completions",
            data=raw,
            headers={"Authorization": f"Bearer {shop.key}", "Content-Type": "application/json"},
            timeout=10,
        )
        expected = {"type": "invalid_request_error", "param": param, "code": "invalid_request"}
        error = response.json().get("error") if response.headers["Content-Type"] == "application/json" else None
        if response.status_code != 400 or not isinstance(error, dict) or not isinstance(error.pop("message"), str):
            wrong.append((case, response.status_code, response.text[:200]))
        elif error != expected:
            wrong.append((case, error))
    assert wrong == []
    # Refused before any money moved: no generation, no hold.
    assert not Generation.objects.filter(account_id=shop.account_id).exists()
