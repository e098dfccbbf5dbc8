"""What the router sends, byte for byte, checked against OpenAI's published schemas: every answer, every
stream chunk in both stream forms, the model list and every error body."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
import requests

from tests.e2e.conftest import Shop, chat, cost_of, make_shop

from .openai_schemas import assert_matches, sse_chunks

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
HELLO = [{"role": "user", "content": "Hello there"}]  # 8 prompt tokens by the emulator's count


def body(shop: Shop, **fields) -> dict:
    return {"model": shop.model.public_id, "messages": HELLO, **fields}


def stream(router: str, shop: Shop, **fields) -> list[dict]:
    """The chunks of a streamed answer, read from the wire."""
    resp = chat(router, shop.key, body(shop, stream=True, **fields), stream=True)
    assert resp.status_code == 200, resp.text
    return sse_chunks(resp)


def exact(payload: str) -> dict:
    return json.loads(payload, parse_float=Decimal)


def test_a_plain_answer_is_a_valid_chat_completion_with_its_cost(router: str, shop: Shop):
    resp = chat(router, shop.key, body(shop, emulator={"completion_tokens": 8}))
    assert resp.status_code == 200, resp.text
    assert_matches("CreateChatCompletionResponse", resp.json())
    usage = exact(resp.text)["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cost"]) == (8, 8, cost_of(8, 8))


def test_a_tool_call_answer_is_a_valid_chat_completion(router: str, shop: Shop):
    resp = chat(router, shop.key, body(shop, tools=[WEATHER_TOOL]))
    assert resp.status_code == 200, resp.text
    assert_matches("CreateChatCompletionResponse", resp.json())
    assert resp.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_a_json_schema_answer_is_a_valid_chat_completion(router: str, shop: Shop):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": schema}}
    resp = chat(router, shop.key, body(shop, response_format=fmt))
    assert resp.status_code == 200, resp.text
    assert_matches("CreateChatCompletionResponse", resp.json())


def test_a_stream_without_include_usage_has_choices_in_every_chunk_and_usage_on_the_finish_chunk(
    router: str, shop: Shop
):
    chunks = stream(router, shop, emulator={"completion_tokens": 5})
    for chunk in chunks:
        assert_matches("CreateChatCompletionStreamResponse", chunk)
    assert [c for c in chunks if not c["choices"]] == [], "a chunk with empty choices was sent without include_usage"
    assert [i for i, c in enumerate(chunks) if c["choices"][0]["finish_reason"]] == [len(chunks) - 1]
    assert [i for i, c in enumerate(chunks) if c.get("usage")] == [len(chunks) - 1]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cost"]) == (8, 5, cost_of(8, 5))


def test_a_stream_with_include_usage_ends_with_a_valid_usage_chunk_without_choices(router: str, shop: Shop):
    chunks = stream(router, shop, stream_options={"include_usage": True}, emulator={"completion_tokens": 5})
    for chunk in chunks:
        assert_matches("CreateChatCompletionStreamResponse", chunk)
    *content, final = chunks
    assert all(c["choices"] for c in content)
    assert all("usage" in c and c["usage"] is None for c in content)  # as OpenAI marks them
    assert content[-1]["choices"][0]["finish_reason"] == "stop"
    assert final["choices"] == []
    usage = final["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cost"]) == (8, 5, cost_of(8, 5))


def test_the_finish_chunk_breaks_the_cost_down_when_the_model_has_a_request_fee(
    router: str, emulator_url: str, transactional_db
):
    shop = make_shop(emulator_url, request_fee="0.001")
    chunks = stream(router, shop, emulator={"completion_tokens": 5})
    for chunk in chunks:
        assert_matches("CreateChatCompletionStreamResponse", chunk)
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["usage"]["cost"] == cost_of(8, 5, fee="0.001")
    assert final["usage"]["cost_details"]["request"] == Decimal("0.001")


def test_streamed_tool_call_chunks_are_valid(router: str, shop: Shop):
    chunks = stream(router, shop, tools=[WEATHER_TOOL])
    for chunk in chunks:
        assert_matches("CreateChatCompletionStreamResponse", chunk)
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert json.loads("".join(tc["function"].get("arguments", "") for tc in calls)) == {"city": "Moscow"}


def test_the_model_list_is_a_valid_list_models_response(router: str, shop: Shop):
    resp = requests.get(f"{router}/models", headers={"Authorization": f"Bearer {shop.key}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert_matches("ListModelsResponse", resp.json())
    assert shop.model.public_id in {m["id"] for m in resp.json()["data"]}


@pytest.mark.parametrize("case", ["bad_key", "unknown_model", "bad_body", "poor", "rate", "stream_poor"])
def test_every_error_body_is_a_valid_error_response(router, emulator_url, transactional_db, case):
    shop = make_shop(emulator_url, funds="0.05" if "poor" in case else "10", rpm=1 if case == "rate" else 100)
    fields = {
        "unknown_model": {"model": "nope/none"},
        "bad_body": {"temperature": 5},
        "stream_poor": {"stream": True},
    }.get(case, {})
    key = "orb_live_" + "x" * 40 if case == "bad_key" else shop.key
    if case == "rate":
        chat(router, key, body(shop)).raise_for_status()
    resp = chat(router, key, body(shop, **fields))
    assert resp.status_code >= 400
    assert resp.headers["content-type"].startswith("application/json")
    assert_matches("ErrorResponse", resp.json())


@pytest.mark.parametrize("case", ["plain", "stream", "models", "error"])
def test_every_response_carries_a_request_id(router: str, shop: Shop, case: str):
    if case == "models":
        resp = requests.get(f"{router}/models", headers={"Authorization": f"Bearer {shop.key}"}, timeout=10)
    else:
        fields = {"stream": True} if case == "stream" else {"temperature": 5} if case == "error" else {}
        resp = chat(router, shop.key, body(shop, **fields))
    assert re.fullmatch(r"[\w.:-]{8,200}", resp.headers.get("x-request-id", "")), dict(resp.headers)


def test_a_sane_client_request_id_is_echoed(router: str, shop: Shop):
    resp = requests.post(
        f"{router}/chat/completions",
        json=body(shop),
        headers={"Authorization": f"Bearer {shop.key}", "X-Request-Id": "req-client-1234"},
        timeout=20,
    )
    assert resp.headers.get("x-request-id") == "req-client-1234"


def test_rate_limit_headers_also_come_under_openai_names(router: str, shop: Shop):
    resp = chat(router, shop.key, body(shop))
    assert resp.headers.get("x-ratelimit-limit-requests") == "1000"
    assert resp.headers.get("x-ratelimit-remaining-requests") == resp.headers["X-RateLimit-Remaining"]
    # OpenAI's duration format: 1s, 6m0s, 1h2m3s, 20ms.
    reset = resp.headers.get("x-ratelimit-reset-requests", "")
    assert re.fullmatch(r"(?=\d)(\d+h)?(\d+m)?(\d+(\.\d+)?s)?|\d+ms", reset), reset


@pytest.mark.parametrize("fail", ["error_mid_stream", "drop_mid_stream"])
def test_a_stream_failing_midway_sends_valid_chunks_then_a_valid_error_event(router: str, shop: Shop, fail: str):
    chunks = stream(router, shop, emulator={"completion_tokens": 8, "fail": fail})
    *content, error = chunks
    for chunk in content:
        assert_matches("CreateChatCompletionStreamResponse", chunk)
    assert_matches("ErrorResponse", error)
