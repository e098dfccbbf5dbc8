"""POST /v1/messages (Anthropic's Messages API) in-process, translated onto an OpenAI-compatible route:
the chat body the provider gets for each translated field, the Anthropic answer and event sequence back,
errors in Anthropic's shape, and the exact cost charged once. The scripted provider is test_chat_view's.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.test import Client

from accounts.models import Account
from completions import pipeline
from completions.ratelimit import RateDecision
from mlrouter.wsgi import application
from tests.completions import test_chat_view
from tests.completions.test_chat_view import (
    UPSTREAM_MODEL,
    FakeProvider,
    Shop,
    assert_nothing_moved,
    assert_settled_once,
    chunk,
    completion,
    decimal_json,
)
from tests.factories import funded_account, key_for

# test_chat_view's scripted provider and priced model.
provider_server = test_chat_view.provider_server
provider = test_chat_view.provider
shop = test_chat_view.shop

pytestmark = pytest.mark.django_db

URL = "/v1/messages"
HI = [{"role": "user", "content": "hi"}]


def post(shop: Shop, body: Any, *, key: str | None = None, header: str = "x-api-key", url: str = URL) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    key = shop.key if key is None else key
    headers = {"HTTP_ANTHROPIC_VERSION": "2023-06-01"}
    if key:
        headers["HTTP_X_API_KEY" if header == "x-api-key" else "HTTP_AUTHORIZATION"] = (
            key if header == "x-api-key" else f"Bearer {key}"
        )
    return Client().post(url, raw, content_type="application/json", **headers)


def events(raw: bytes) -> list[tuple[str, Any]]:
    """(event name, parsed data) of an Anthropic event stream, pings included."""
    assert raw.endswith(b"\n\n"), raw
    out = []
    for block in raw[:-2].split(b"\n\n"):
        name, data = block.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: "), block
        out.append((name[7:].decode(), json.loads(data[6:], parse_float=Decimal)))
    return out


def streamed(response: Any) -> bytes:
    return b"".join(response.streaming_content)


# --- The request, translated ------------------------------------------------------------------------------


def test_every_translated_field_reaches_the_provider_as_chat_completions(shop: Shop, provider: FakeProvider):
    provider.answer(completion("ok", {"prompt_tokens": 1, "completion_tokens": 1}))
    body = {
        "model": shop.model.public_id,
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is here?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12°C"},
                    {"type": "text", "text": "And?"},
                ],
            },
        ],
        "tools": [{"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "metadata": {"user_id": "customer-42"},
        "thinking": {"type": "enabled", "budget_tokens": 8000},
    }

    assert post(shop, body).status_code == 200

    (sent,) = provider.received
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {
        "model": UPSTREAM_MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "12°C"},
            {"role": "user", "content": "And?"},
        ],
        "max_tokens": 300,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "tools": [
            {
                "type": "function",
                "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object"}},
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": False,
        "user": "customer-42",
        "reasoning_effort": "medium",
    }


@pytest.mark.parametrize(
    ("choice", "sent"), [("auto", "auto"), ("any", "required"), ("none", "none")], ids=["auto", "any", "none"]
)
def test_tool_choice_maps_to_openais(shop: Shop, provider: FakeProvider, choice: str, sent: str):
    provider.answer(completion("ok", {"prompt_tokens": 1, "completion_tokens": 1}))
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    body = {
        "model": shop.model.public_id,
        "max_tokens": 5,
        "messages": HI,
        "tools": tools,
        "tool_choice": {"type": choice},
    }

    assert post(shop, body, header="authorization").status_code == 200

    assert provider.received[0].body["tool_choice"] == sent


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (4096, "low"), (16384, "medium"), (32000, "high")])
def test_a_thinking_budget_becomes_a_reasoning_effort(shop: Shop, provider: FakeProvider, budget: int, effort: str):
    provider.answer(completion("ok", {"prompt_tokens": 1, "completion_tokens": 1}))
    thinking = {"type": "enabled", "budget_tokens": budget}

    post(shop, {"model": shop.model.public_id, "max_tokens": 5, "messages": HI, "thinking": thinking})

    assert provider.received[0].body["reasoning_effort"] == effort


# --- The answer -----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("money_path")
def test_a_plain_answer_is_an_anthropic_message_with_its_exact_cost_charged_once(shop: Shop, provider: FakeProvider):
    provider.answer(completion("Hello there", {"prompt_tokens": 13, "completion_tokens": 7}))

    response = post(shop, {"model": shop.model.public_id, "max_tokens": 50, "messages": HI}, url=URL + "?beta=true")

    assert response.status_code == 200
    generation_id = response["X-Generation-Id"]
    cost = Decimal("0.00000615")  # 13 × $0.15 / 1M + 7 × $0.60 / 1M
    assert decimal_json(response.content) == {
        "id": generation_id,
        "type": "message",
        "role": "assistant",
        "model": shop.model.public_id,
        "content": [{"type": "text", "text": "Hello there"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 13,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 7,
            "cost": cost,
        },
    }
    assert_settled_once(shop, generation_id, cost)


def test_tool_calls_come_back_as_tool_use_blocks(shop: Shop, provider: FakeProvider):
    answer = completion("", {"prompt_tokens": 5, "completion_tokens": 3})
    answer["choices"][0]["message"]["tool_calls"] = [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    ]
    answer["choices"][0]["finish_reason"] = "tool_calls"
    provider.answer(answer)

    body = decimal_json(post(shop, {"model": shop.model.public_id, "max_tokens": 50, "messages": HI}).content)

    assert body["content"] == [{"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}]
    assert body["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("finish", "extra", "stop_reason", "stop_sequence"),
    [
        ("stop", {}, "end_turn", None),
        ("length", {}, "max_tokens", None),
        ("content_filter", {}, "refusal", None),
        ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),
    ],
    ids=["end_turn", "max_tokens", "refusal", "stop_sequence"],
)
def test_finish_reasons_become_stop_reasons(
    shop: Shop, provider: FakeProvider, finish: str, extra: dict, stop_reason: str, stop_sequence: str | None
):
    answer = completion("x", {"prompt_tokens": 1, "completion_tokens": 1})
    answer["choices"][0].update(finish_reason=finish, **extra)
    provider.answer(answer)
    body = {"model": shop.model.public_id, "max_tokens": 5, "messages": HI, "stop_sequences": ["END"]}

    answer = decimal_json(post(shop, body).content)

    assert (answer["stop_reason"], answer["stop_sequence"]) == (stop_reason, stop_sequence)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("money_path")
def test_a_stream_is_anthropics_event_sequence_and_message_delta_carries_the_exact_cost(
    shop: Shop, provider: FakeProvider
):
    usage = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    provider.events(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            chunk({}, finish_reason="tool_calls"),
            {**chunk({}), "choices": [], "usage": usage},
        ]
    )

    response = post(shop, {"model": shop.model.public_id, "max_tokens": 50, "messages": HI, "stream": True})

    assert response["Content-Type"] == "text/event-stream"
    got = events(streamed(response))
    generation_id = response["X-Generation-Id"]
    cost = Decimal("0.00000375")  # 9 × 0.15 + 4 × 0.60, per 1M
    assert [name for name, _ in got] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = got[0][1]["message"]
    assert (start["id"], start["model"], start["content"]) == (generation_id, shop.model.public_id, [])
    assert got[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert got[2][1]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert got[5][1]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}
    assert got[6][1] == {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
    }
    assert got[9][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 9,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 4,
            "cost": cost,
        },
    }
    assert_settled_once(shop, generation_id, cost)
    assert provider.received[0].body["stream_options"] == {"include_usage": True}


@pytest.mark.django_db(transaction=True)
def test_a_silent_upstream_gets_anthropic_pings(shop: Shop, provider: FakeProvider, settings):
    settings.STREAM_KEEPALIVE_SECONDS = 0.005
    # Sent apart (20 ms between HTTP chunks): the upstream is silent longer than the keep-alive interval.
    provider.pieces(
        [
            b"data: " + json.dumps(chunk({"role": "assistant", "content": ""})).encode() + b"\n\n",
            b"data: " + json.dumps(chunk({"content": "a"})).encode() + b"\n\n",
            b"data: " + json.dumps(chunk({}, finish_reason="stop")).encode() + b"\n\n",
            b"data: [DONE]\n\n",
        ]
    )
    response = post(shop, {"model": shop.model.public_id, "max_tokens": 5, "messages": HI, "stream": True})
    got = events(streamed(response))
    assert ("ping", {"type": "ping"}) in got
    assert got[-1] == ("message_stop", {"type": "message_stop"})


@pytest.mark.django_db(transaction=True)
def test_a_stream_the_upstream_broke_off_ends_with_an_anthropic_error_event(shop: Shop, provider: FakeProvider):
    provider.events([chunk({"role": "assistant", "content": ""}), chunk({"content": "par"})], done=False)

    response = post(shop, {"model": shop.model.public_id, "max_tokens": 5, "messages": HI, "stream": True})

    got = events(streamed(response))
    assert [name for name, _ in got] == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert got[-1][1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "Stream interrupted: the upstream connection dropped mid-stream."},
    }


# --- Errors in Anthropic's shape ---------------------------------------------------------------------------


def anthropic_error(response: Any) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert isinstance(body["error"]["message"], str)
    return response.status_code, body["error"]["type"]


def test_a_missing_max_tokens_is_an_invalid_request_error(shop: Shop, provider: FakeProvider):
    response = post(shop, {"model": shop.model.public_id, "messages": HI})
    assert anthropic_error(response) == (400, "invalid_request_error")
    assert "max_tokens" in response.json()["error"]["message"]
    assert provider.received == []


@pytest.mark.parametrize("key", ["", "orb_live_unknown"], ids=["missing", "unknown"])
def test_a_missing_or_unknown_key_is_an_authentication_error(shop: Shop, provider: FakeProvider, key: str):
    assert anthropic_error(post(shop, {"model": shop.model.public_id, "max_tokens": 5, "messages": HI}, key=key)) == (
        401,
        "authentication_error",
    )


def test_an_unknown_model_is_a_not_found_error(shop: Shop, provider: FakeProvider):
    assert anthropic_error(post(shop, {"model": "nope/nope", "max_tokens": 5, "messages": HI})) == (
        404,
        "not_found_error",
    )


def test_insufficient_funds_is_a_billing_error_with_the_affordable_max_tokens(
    shop: Shop, provider: FakeProvider, settings
):
    settings.MIN_BALANCE_USD = Decimal("0.0001")
    account = funded_account("0.0005")
    poor = Shop(model=shop.model, account=account, key=key_for(account, rpm_limit=1000))

    response = post(poor, {"model": shop.model.public_id, "max_tokens": 4096, "messages": HI})

    assert anthropic_error(response) == (402, "billing_error")
    assert "It affords max_tokens=" in response.json()["error"]["message"]
    assert poor.charges() == []


def test_a_suspended_account_is_a_permission_error(shop: Shop, provider: FakeProvider):
    shop.account.status = Account.Status.SUSPENDED
    shop.account.save()
    response = post(shop, {"model": shop.model.public_id, "max_tokens": 5, "messages": HI})
    assert anthropic_error(response) == (403, "permission_error")


def test_a_body_too_large_is_request_too_large(shop: Shop, provider: FakeProvider, settings):
    settings.MAX_REQUEST_BYTES = 100
    response = post(
        shop, {"model": shop.model.public_id, "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 200}]}
    )
    assert anthropic_error(response) == (413, "request_too_large")


def test_no_route_answering_is_an_overloaded_error_529(shop: Shop, provider: FakeProvider):
    provider.answer({"error": {"message": "boom"}}, status=500)
    response = post(shop, {"model": shop.model.public_id, "max_tokens": 5, "messages": HI})
    assert anthropic_error(response) == (529, "overloaded_error")
    assert_nothing_moved(shop)


def test_the_rate_limit_is_a_rate_limit_error_with_its_headers(shop: Shop, provider: FakeProvider, monkeypatch):
    refused = RateDecision(allowed=False, limit=1, remaining=0, reset_ms=30_000)
    monkeypatch.setattr(pipeline, "rate_limit_hit", lambda **kwargs: refused)

    response = post(shop, {"model": shop.model.public_id, "max_tokens": 5, "messages": HI})

    assert anthropic_error(response) == (429, "rate_limit_error")
    assert response["Retry-After"] == "30"
    assert response["x-should-retry"] == "true"
    assert provider.received == []


def test_an_unexpected_error_is_an_api_error_500_through_the_wsgi_entry(
    shop: Shop, provider: FakeProvider, monkeypatch
):
    def broken(request, surface):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "serve", broken)
    client = httpx.Client(transport=httpx.WSGITransport(app=application), base_url="http://localhost")

    response = client.post(URL, json={"model": shop.model.public_id, "max_tokens": 5, "messages": HI})

    assert anthropic_error(response) == (500, "api_error")
    assert response.headers["x-should-retry"] == "true"
    chat = client.post("/v1/chat/completions", json={"model": shop.model.public_id, "messages": HI})
    assert (chat.status_code, chat.json()["error"]["type"]) == (500, "server_error")  # chat keeps OpenAI's shape


# --- count_tokens -------------------------------------------------------------------------------------------


def test_count_tokens_is_our_estimate_and_free(shop: Shop, provider: FakeProvider):
    raw = json.dumps({"model": shop.model.public_id, "messages": HI}).encode()

    response = post(shop, raw, url=URL + "/count_tokens")

    assert response.status_code == 200
    assert response.json() == {"input_tokens": -(-len(raw) // 4)}
    assert provider.received == []
    assert_nothing_moved(shop)
    assert anthropic_error(post(shop, raw, key="", url=URL + "/count_tokens")) == (401, "authentication_error")


def test_a_system_turn_among_the_messages_becomes_a_system_message_in_its_place(shop: Shop, provider: FakeProvider):
    provider.answer(completion("ok", {"prompt_tokens": 1, "completion_tokens": 1}))
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "Reminder: be brief."}]},
    ]

    response = post(shop, {"model": shop.model.public_id, "max_tokens": 10, "messages": messages})

    assert response.status_code == 200, response.content
    assert provider.received[0].body["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Reminder: be brief."},
    ]
