"""Routes that speak Anthropic's Messages API (`Route.api = anthropic-messages`), in-process against a scripted
Anthropic provider: the chat surface translated onto them, the Messages surface passed through to them
untouched, fallback across kinds and routes skipped for a surface they cannot serve. Each row of the
translation tables in the docs page "Messages (Anthropic)" is checked here; the Messages surface on
OpenAI-compatible routes is tests/completions/test_messages.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from billing.services import price_set
from completions.models import Generation, Route
from tests.completions import test_chat_view
from tests.completions.test_chat_view import (
    FUNDS,
    PROVIDER_KEY,
    UPSTREAM_MODEL,
    FakeProvider,
    Shop,
    assert_nothing_moved,
    assert_settled_once,
    completion,
    decimal_json,
    sse_data,
)
from tests.completions.test_messages import events, streamed
from tests.factories import ModelFactory, ProviderFactory, RouteFactory, funded_account, key_for

provider_server = test_chat_view.provider_server
provider = test_chat_view.provider

pytestmark = pytest.mark.django_db

PER_MILLION = Decimal(1_000_000)
PROMPT, COMPLETION, CACHED, CACHE_WRITE = Decimal("1.00"), Decimal("5.00"), Decimal("0.10"), Decimal("1.25")


def make_shop(provider: FakeProvider, *apis: str) -> Shop:
    """A model priced with cache read and write prices, one route per kind in `apis` (in that order)."""
    model = ModelFactory(max_output_tokens=4096, context_length=200_000)
    upstream = ProviderFactory(base_url=f"{provider.url}/v1", api_key=PROVIDER_KEY)
    for priority, api in enumerate(apis):
        RouteFactory(
            model=model, provider=upstream, upstream_model=f"{UPSTREAM_MODEL}-{api}", api=api, priority=priority
        )
    price_set(
        model_id=model.pk,
        prompt=PROMPT,
        completion=COMPLETION,
        cached_prompt=CACHED,
        cache_write_prompt=CACHE_WRITE,
        effective_from=model.created_at - timedelta(seconds=5),
    )
    account = funded_account(str(FUNDS))
    return Shop(model=model, account=account, key=key_for(account, rpm_limit=1000))


@pytest.fixture
def shop(provider: FakeProvider) -> Shop:
    return make_shop(provider, Route.Api.ANTHROPIC_MESSAGES)


def cost(prompt: int, completion: int, read: int = 0, written: int = 0) -> Decimal:
    """The documented arithmetic: prompt, cache reads, cache writes and completion at their prices."""
    return (
        Decimal(prompt - read - written) * PROMPT
        + Decimal(read) * CACHED
        + Decimal(written) * CACHE_WRITE
        + Decimal(completion) * COMPLETION
    ) / PER_MILLION


def message(content: list[dict], stop_reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    """A provider's plain Anthropic message."""
    return {
        "id": "msg_upstream_1",
        "type": "message",
        "role": "assistant",
        "model": UPSTREAM_MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def frames(*items: tuple[str, dict]) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + json.dumps({"type": name, **data}).encode() + b"\n\n"
        for name, data in items
    )


def script_stream(provider: FakeProvider, payload: bytes) -> None:
    provider.replies.append(lambda _: (200, "text/event-stream", payload))


START = (
    "message_start",
    {"message": {**message([], stop_reason=None), "usage": {"input_tokens": 10, "output_tokens": 1}}},
)
THINKING_SIGNED = [
    ("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm."}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "signature_delta", "signature": "sig-abc"}}),
    ("content_block_stop", {"index": 0}),
]
TEXT = [
    ("content_block_start", {"index": 1, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": "Hello"}}),
    ("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": " there"}}),
    ("content_block_stop", {"index": 1}),
]
TOOL = [
    (
        "content_block_start",
        {"index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}},
    ),
    ("content_block_delta", {"index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"city":'}}),
    ("content_block_delta", {"index": 2, "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'}}),
    ("content_block_stop", {"index": 2}),
]


def delta(stop_reason: str = "end_turn", **usage: int) -> tuple[str, dict]:
    return ("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": usage})


STOP = ("message_stop", {})


def chat(shop: Shop, body: dict) -> Any:
    return Client().post(
        "/v1/chat/completions",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {shop.key}",
    )


def messages(shop: Shop, body: dict, **headers: str) -> Any:
    return Client().post(
        "/v1/messages", json.dumps(body), content_type="application/json", HTTP_X_API_KEY=shop.key, **headers
    )


# --- Chat Completions onto an Anthropic route: the request --------------------------------------------------


def test_every_translated_chat_field_reaches_the_anthropic_route_as_a_messages_body(shop: Shop, provider: FakeProvider):
    provider.answer(message([{"type": "text", "text": "ok"}]))
    body = {
        "model": shop.model.public_id,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "cold"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "warm"}]},
        ],
        "max_tokens": 300,
        "temperature": 0.3,
        "top_p": 0.9,
        "stop": ["END"],
        "tools": [
            {
                "type": "function",
                "function": {"name": "weather", "description": "Weather.", "parameters": {"type": "object"}},
            }
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "user": "customer-7",
        "reasoning_effort": "low",
    }

    response = chat(shop, body)

    assert response.status_code == 200, response.content
    (received,) = provider.received
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == PROVIDER_KEY
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in received.headers
    assert received.body == {
        "model": f"{UPSTREAM_MODEL}-anthropic-messages",
        "system": "Be brief.\n\nUse metric.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is here?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "cold"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "warm"},
                ],
            },
        ],
        "max_tokens": 300,
        "temperature": 0.3,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "tools": [{"name": "weather", "description": "Weather.", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "customer-7"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "weather"}}, {"type": "tool", "name": "weather"}),
    ],
)
def test_tool_choice_maps_to_anthropics(shop: Shop, provider: FakeProvider, choice: Any, sent: dict):
    provider.answer(message([{"type": "text", "text": "ok"}]))
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    body = {"model": shop.model.public_id, "messages": [{"role": "user", "content": "hi"}], "tools": tools}

    assert chat(shop, {**body, "tool_choice": choice}).status_code == 200

    assert provider.received[0].body["tool_choice"] == sent


@pytest.mark.parametrize(("effort", "budget"), [("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 24576)])
def test_a_reasoning_effort_becomes_a_thinking_budget(shop: Shop, provider: FakeProvider, effort: str, budget: int):
    provider.answer(message([{"type": "text", "text": "ok"}]))
    body = {"model": shop.model.public_id, "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": effort}

    assert chat(shop, {**body, "max_completion_tokens": 30000}).status_code == 200

    assert provider.received[0].body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert provider.received[0].body["max_tokens"] == 30000  # max_completion_tokens is Anthropic's max_tokens


def test_fields_messages_cannot_say_are_dropped(shop: Shop, provider: FakeProvider):
    provider.answer(message([{"type": "text", "text": "ok"}]))
    body = {
        "model": shop.model.public_id,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 20,
        "response_format": {"type": "json_object"},
        "seed": 7,
        "stop": "END",
    }

    assert chat(shop, body).status_code == 200

    assert provider.received[0].body == {
        "model": f"{UPSTREAM_MODEL}-anthropic-messages",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 20,
        "stop_sequences": ["END"],
    }


def test_a_chat_request_without_max_tokens_asks_anthropic_for_the_default(shop: Shop, provider: FakeProvider):
    provider.answer(message([{"type": "text", "text": "ok"}]))

    assert (
        chat(shop, {"model": shop.model.public_id, "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    )

    assert provider.received[0].body["max_tokens"] == 4096
    assert "stop_sequences" not in provider.received[0].body


# --- Chat Completions onto an Anthropic route: the answer ---------------------------------------------------


def test_an_anthropic_message_comes_back_as_a_chat_completion_with_its_exact_cost(shop: Shop, provider: FakeProvider):
    content = [
        {"type": "thinking", "thinking": "Let me see.", "signature": "sig"},
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
    ]
    provider.answer(
        message(
            content,
            "tool_use",
            input_tokens=40,
            output_tokens=12,
            cache_creation_input_tokens=100,
            cache_read_input_tokens=200,
        )
    )

    response = chat(shop, {"model": shop.model.public_id, "messages": [{"role": "user", "content": "hi"}]})

    assert response.status_code == 200, response.content
    body = decimal_json(response.content)
    generation_id = response["X-Generation-Id"]
    assert (body["id"], body["object"], body["model"]) == (generation_id, "chat.completion", shop.model.public_id)
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Calling."
    assert choice["message"]["reasoning"] == "Let me see."  # OpenRouter's name for it
    assert choice["message"]["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}
    ]
    charged = cost(340, 12, read=200, written=100)
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (340, 12, 352)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 200, "cache_write_tokens": 100}
    assert usage["cost"] == charged
    assert usage["cost_details"]["cache_write_prompt"] == Decimal(100) * CACHE_WRITE / PER_MILLION
    assert_settled_once(shop, generation_id, charged)
    generation = Generation.objects.get(pk=generation_id)
    assert (generation.cached_tokens, generation.cache_write_tokens, generation.upstream_id) == (
        200,
        100,
        "msg_upstream_1",
    )


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("pause_turn", "stop"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_become_finish_reasons(shop: Shop, provider: FakeProvider, stop_reason: str, finish_reason: str):
    provider.answer(message([{"type": "text", "text": "ok"}], stop_reason))

    response = chat(shop, {"model": shop.model.public_id, "messages": [{"role": "user", "content": "hi"}]})

    assert response.json()["choices"][0]["finish_reason"] == finish_reason


@pytest.mark.django_db(transaction=True)
def test_an_anthropic_stream_comes_back_as_chat_chunks_with_the_exact_cost_last(shop: Shop, provider: FakeProvider):
    script_stream(
        provider,
        frames(
            START,
            ("ping", {}),
            *THINKING_SIGNED,
            *TEXT,
            *TOOL,
            delta("tool_use", output_tokens=9, cache_read_input_tokens=4),
            STOP,
        ),
    )

    response = chat(
        shop,
        {
            "model": shop.model.public_id,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )

    chunks = [json.loads(d, parse_float=Decimal) for d in sse_data(streamed(response)) if d != b"[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("reasoning", "") for d in deltas) == "Hmm."
    assert "".join(d.get("content") or "" for d in deltas) == "Hello there"
    calls = [call for d in deltas for call in d.get("tool_calls", ())]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city":"Oslo"}'
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    usage = chunks[-1]["usage"]
    charged = cost(14, 9, read=4)
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cost"]) == (14, 9, charged)
    assert_settled_once(shop, response["X-Generation-Id"], charged)


@pytest.mark.django_db(transaction=True)
def test_an_anthropic_error_event_mid_stream_ends_the_chat_stream_with_an_error_charged_once(
    shop: Shop, provider: FakeProvider
):
    error = ("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
    script_stream(provider, frames(START, *TEXT[:2], error))

    response = chat(
        shop, {"model": shop.model.public_id, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )

    data = sse_data(streamed(response))
    assert json.loads(data[-2])["error"]["message"].startswith("Stream interrupted")
    generation = Generation.objects.get(pk=response["X-Generation-Id"])
    assert generation.status == Generation.Status.FAILED
    # The prompt it reported (message_start) and what it generated were delivered: charged once for them.
    assert_settled_once(shop, generation.id, cost(10, 1))


def test_an_anthropic_client_error_is_passed_on_in_the_chat_shape_and_not_charged(shop: Shop, provider: FakeProvider):
    provider.answer(
        {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: too large"}}, 400
    )

    response = chat(shop, {"model": shop.model.public_id, "messages": [{"role": "user", "content": "hi"}]})

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "max_tokens: too large"
    assert_nothing_moved(shop)


# --- Messages onto an Anthropic route: passed through -------------------------------------------------------

NATIVE_BODY = {
    "max_tokens": 1024,
    "system": [{"type": "text", "text": "You are a coder.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Fix it.", "cache_control": {"type": "ephemeral"}}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "The bug is here.", "signature": "EqQBCkYIBxgCKkB-signed"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "toolu_9", "name": "Read", "input": {"path": "a.py"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "print(1)"}]},
    ],
    "tools": [
        {"name": "Read", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ],
    "thinking": {"type": "adaptive"},
    "metadata": {"user_id": "session-1"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
    "top_k": 5,
}


def test_a_messages_body_reaches_an_anthropic_route_untouched_but_for_the_model(shop: Shop, provider: FakeProvider):
    provider.answer(message([{"type": "text", "text": "ok"}]))
    body = {
        **NATIVE_BODY,
        "model": shop.model.public_id,
        "models": [shop.model.public_id],
        "provider": {"sort": "price"},
    }

    response = messages(
        shop,
        body,
        HTTP_ANTHROPIC_VERSION="2023-06-01",
        HTTP_ANTHROPIC_BETA="claude-code-20250219,context-management-2025-06-27",
    )

    assert response.status_code == 200, response.content
    (received,) = provider.received
    assert received.path == "/v1/messages"
    assert received.body == {**NATIVE_BODY, "model": f"{UPSTREAM_MODEL}-anthropic-messages"}
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert received.headers["anthropic-beta"] == "claude-code-20250219,context-management-2025-06-27"
    assert received.headers["x-api-key"] == PROVIDER_KEY  # ours for the provider, never the customer's


def test_thinking_blocks_no_provider_signed_are_not_sent_to_a_native_route(shop: Shop, provider: FakeProvider):
    # A conversation begun on a translated route carries our unsigned thinking blocks; Anthropic would refuse
    # them. Signed ones (the provider's own) go through untouched.
    provider.answer(message([{"type": "text", "text": "ok"}]))
    signed = {"type": "thinking", "thinking": "theirs", "signature": "sig-1"}
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "ours", "signature": ""}, TEXT_HELLO]},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": [signed, TEXT_HELLO]},
        {"role": "user", "content": "once more"},
    ]

    response = messages(shop, {**NATIVE_BODY, "model": shop.model.public_id, "messages": history})

    assert response.status_code == 200, response.content
    (received,) = provider.received
    assert received.body["messages"] == [
        history[0],
        {"role": "assistant", "content": [TEXT_HELLO]},
        history[2],
        history[3],
        history[4],
    ]


TEXT_HELLO = {"type": "text", "text": "hello"}


def test_a_native_answer_is_handed_on_as_it_came_with_our_id_model_and_exact_cost(shop: Shop, provider: FakeProvider):
    content = [
        {"type": "thinking", "thinking": "Hmm.", "signature": "sig-abc"},
        {"type": "text", "text": "Done.", "citations": None},
    ]
    provider.answer(
        message(
            content, input_tokens=30, output_tokens=7, cache_creation_input_tokens=1000, cache_read_input_tokens=500
        )
        | {"container": None}
    )

    response = messages(shop, {**NATIVE_BODY, "model": shop.model.public_id})

    assert response.status_code == 200, response.content
    body = decimal_json(response.content)
    generation_id = response["X-Generation-Id"]
    charged = cost(1530, 7, read=500, written=1000)
    assert (body["id"], body["model"], body["content"], body["container"]) == (
        generation_id,
        shop.model.public_id,
        content,
        None,
    )
    assert body["usage"] == {
        "input_tokens": 30,
        "output_tokens": 7,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 500,
        "cost": charged,
    }
    assert_settled_once(shop, generation_id, charged)
    generation = Generation.objects.get(pk=generation_id)
    assert (generation.surface, generation.upstream_id, generation.finish_reason) == (
        "messages",
        "msg_upstream_1",
        "end_turn",
    )


@pytest.mark.django_db(transaction=True)
def test_a_native_stream_is_relayed_event_by_event_and_message_delta_carries_the_exact_cost(
    shop: Shop, provider: FakeProvider
):
    upstream = [
        START,
        ("ping", {}),
        *THINKING_SIGNED,
        *TEXT,
        *TOOL,
        delta("tool_use", output_tokens=20, cache_creation_input_tokens=8),
        STOP,
    ]
    script_stream(provider, frames(*upstream))

    response = messages(shop, {**NATIVE_BODY, "model": shop.model.public_id, "stream": True})

    got = events(streamed(response))
    generation_id = response["X-Generation-Id"]
    assert [name for name, _ in got] == [name for name, _ in upstream]
    start = got[0][1]["message"]
    assert (start["id"], start["model"]) == (generation_id, shop.model.public_id)
    # Every content event is the provider's own: signatures and tool input deltas untouched.
    assert [data for name, data in got[1:-2]] == [{"type": name, **data} for name, data in upstream[1:-2]]
    charged = cost(18, 20, written=8)
    assert got[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_creation_input_tokens": 8,
            "cache_read_input_tokens": 0,
            "cost": charged,
        },
    }
    assert_settled_once(shop, generation_id, charged)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "ending",
    [
        [("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})],  # an error event
        [],  # the connection closed without message_stop
    ],
)
def test_a_native_stream_that_fails_mid_answer_ends_with_an_error_event_and_is_settled_once(
    shop: Shop, provider: FakeProvider, ending: list
):
    script_stream(provider, frames(START, *TEXT[:2], *ending))

    response = messages(shop, {**NATIVE_BODY, "model": shop.model.public_id, "stream": True})

    got = events(streamed(response))
    assert [name for name, _ in got] == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert got[-1][1]["error"]["type"] == "api_error"
    generation = Generation.objects.get(pk=response["X-Generation-Id"])
    assert generation.status == Generation.Status.FAILED
    assert_settled_once(shop, generation.id, cost(10, 1))


def test_no_anthropic_route_answering_is_an_overloaded_error_529_not_charged(shop: Shop, provider: FakeProvider):
    provider.answer({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, 529)

    response = messages(shop, {**NATIVE_BODY, "model": shop.model.public_id})

    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"
    assert_nothing_moved(shop)


def test_a_request_only_a_native_route_can_take_is_refused_by_a_translated_one(provider: FakeProvider):
    shop = make_shop(provider, Route.Api.OPENAI_CHAT)

    response = messages(shop, {**NATIVE_BODY, "model": shop.model.public_id})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "native route" in response.json()["error"]["message"]
    assert provider.received == []
    assert_nothing_moved(shop)


def test_a_request_only_a_native_route_can_take_skips_the_translated_routes_before_it(provider: FakeProvider):
    shop = make_shop(provider, Route.Api.OPENAI_CHAT, Route.Api.ANTHROPIC_MESSAGES)
    provider.answer(message([{"type": "text", "text": "searched"}]))

    response = messages(shop, {**NATIVE_BODY, "model": shop.model.public_id})

    assert response.status_code == 200, response.content
    assert [r.path for r in provider.received] == ["/v1/messages"]


# --- Kinds per route: fallback across kinds, routes that cannot serve a surface -----------------------------


def test_a_fallback_crosses_kinds_each_route_called_in_its_own_api(provider: FakeProvider):
    shop = make_shop(provider, Route.Api.ANTHROPIC_MESSAGES, Route.Api.OPENAI_CHAT)
    provider.answer({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, 529)
    provider.answer(completion("from chat", {"prompt_tokens": 5, "completion_tokens": 2}))

    response = messages(
        shop, {"model": shop.model.public_id, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    )

    assert response.status_code == 200, response.content
    assert [r.path for r in provider.received] == ["/v1/messages", "/v1/chat/completions"]
    assert provider.received[0].headers["x-api-key"] == PROVIDER_KEY
    assert provider.received[1].headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert response.json()["content"] == [{"type": "text", "text": "from chat"}]
    assert_settled_once(shop, response["X-Generation-Id"], cost(5, 2))


def test_routes_whose_api_cannot_serve_the_surface_are_skipped(provider: FakeProvider):
    shop = make_shop(provider, Route.Api.OPENAI_EMBEDDINGS)

    response = chat(shop, {"model": shop.model.public_id, "messages": [{"role": "user", "content": "hi"}]})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_route"
    assert provider.received == []
    assert_nothing_moved(shop)
