"""Pass-through: the upstream receives the client's body unchanged but for `model` (and usage for streams)."""

from __future__ import annotations

import json

import pytest
import requests

from completions.models import Generation

from .conftest import Shop, chat

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "strict": True,
        },
    }
]
# Every documented parameter, and one no provider knows: all must arrive exactly as sent.
PARAMETERS = {
    "temperature": 0.7,
    "top_p": 0.9,
    "max_tokens": 50,
    "max_completion_tokens": 40,
    "tools": TOOLS,
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "response_format": {"type": "json_object"},
    "seed": 42,
    "stop": ["\n\n", "END"],
    "user": "customer-42",
    "logprobs": True,
    "top_logprobs": 2,
    "n": 2,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "logit_bias": {"50256": -100, "1820": 5},
    "metadata": {"order": "A-1", "note": "привет"},
    "x_custom": {"a": [1, 2], "nested": {"b": None, "c": 1.25, "d": "ü"}},
}
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "weather",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
            "required": ["city", "temp_c"],
            "additionalProperties": False,
        },
    },
}


def sent(shop: Shop, **fields) -> dict:
    return {
        "model": shop.model.public_id,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Moscow?"}],
        **fields,
        "emulator": {"echo": True},
    }


def test_every_documented_parameter_and_an_unknown_one_arrive_unchanged(router: str, shop: Shop):
    body = sent(shop, **PARAMETERS)
    response = chat(router, shop.key, body)
    assert response.status_code == 200, response.text
    received = response.json()["emulator_received"]["body"]
    assert received == {**body, "model": "emulator-small"}
    generation = Generation.objects.get(pk=response.json()["id"])
    assert generation.user == "customer-42"


@pytest.mark.parametrize("response_format", [{"type": "json_object"}, JSON_SCHEMA, {"type": "text"}])
def test_response_format_arrives_unchanged(router: str, shop: Shop, response_format: dict):
    body = sent(shop, response_format=response_format)
    response = chat(router, shop.key, body)
    assert response.status_code == 200, response.text
    assert response.json()["emulator_received"]["body"] == {**body, "model": "emulator-small"}


@pytest.mark.parametrize(
    ("stream_options", "forwarded"),
    [
        (None, {"include_usage": True}),
        ({"include_usage": False}, {"include_usage": True}),
        ({"include_usage": False, "x_future": 1}, {"include_usage": True, "x_future": 1}),
    ],
)
def test_a_stream_asks_the_upstream_for_usage_and_changes_nothing_else(
    router: str, shop: Shop, stream_options, forwarded
):
    fields = {**PARAMETERS, "stream": True}
    if stream_options is not None:
        fields["stream_options"] = stream_options
    body = sent(shop, **fields)
    response = chat(router, shop.key, body, stream=True)
    assert response.status_code == 200
    events = [line[6:] for line in response.iter_lines() if line.startswith(b"data: ")]
    first = json.loads(events[0])
    assert first["emulator_received"]["body"] == {**body, "model": "emulator-small", "stream_options": forwarded}
    assert events[-1] == b"[DONE]"


def test_a_chunked_body_without_content_length_is_read_whole(router: str, shop: Shop):
    body = sent(shop, **PARAMETERS)
    raw = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {shop.key}", "Content-Type": "application/json"}
    # A generator makes requests send Transfer-Encoding: chunked, as Go's and Node's clients do for streams.
    response = requests.post(
        f"{router}/chat/completions",
        data=(raw[i : i + 100] for i in range(0, len(raw), 100)),
        headers=headers,
        timeout=20,
    )
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 200, response.text
    assert response.json()["emulator_received"]["body"] == {**body, "model": "emulator-small"}
    # MAX_REQUEST_BYTES (4 MiB) holds for chunked bodies too.
    huge = json.dumps(sent(shop, x_padding="x" * 4 * 1024 * 1024)).encode()
    response = requests.post(
        f"{router}/chat/completions",
        data=(huge[i : i + 65536] for i in range(0, len(huge), 65536)),
        headers=headers,
        timeout=20,
    )
    assert (response.status_code, response.json()["error"]["code"]) == (413, "request_too_large")
