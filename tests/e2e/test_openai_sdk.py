"""The official OpenAI Python SDK against a live router: the contract clients rely on."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from billing.models import LedgerEntry
from completions.models import Generation

from .conftest import Shop


def client(router: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=router, api_key=key, max_retries=0, timeout=20)


def cost_of(prompt: int, completion: int) -> Decimal:
    """The price arithmetic of the default shop: $0.15 / $0.60 per 1M tokens."""
    return (Decimal(prompt) * Decimal("0.15") + Decimal(completion) * Decimal("0.60")) / Decimal(1_000_000)


def test_a_plain_completion_reports_its_exact_cost_and_charges_it(router: str, shop: Shop):
    before = shop.balance()
    resp = client(router, shop.key).chat.completions.with_raw_response.create(
        model=shop.model.public_id,
        messages=[{"role": "user", "content": "Hello there"}],
        extra_body={"emulator": {"completion_tokens": 8}},
    )
    completion = resp.parse()
    assert completion.id.startswith("gen-")
    assert resp.headers["x-generation-id"] == completion.id
    assert completion.model == shop.model.public_id
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (8, 8)
    # The cost is written as an exact decimal number, not a rounded float.
    assert json.loads(resp.http_response.text, parse_float=Decimal)["usage"]["cost"] == cost_of(8, 8)
    assert before - shop.balance() == cost_of(8, 8)
    charge = LedgerEntry.objects.get(reference=completion.id)
    assert (charge.kind, charge.amount) == ("charge", -cost_of(8, 8))
    gen = Generation.objects.get(pk=completion.id)
    assert (gen.status, gen.usage_source, gen.cost) == ("completed", "upstream", cost_of(8, 8))


def test_the_docs_stream_loop_runs_to_the_end_and_the_finish_chunk_carries_the_charged_cost(router: str, shop: Shop):
    before = shop.balance()
    stream = client(router, shop.key).chat.completions.create(
        model=shop.model.public_id,
        messages=[{"role": "user", "content": "Hello there"}],
        stream=True,
        extra_body={"emulator": {"completion_tokens": 5}},
    )
    # OpenAI's documented loop: it reads choices[0] of every chunk (IndexError on a chunk without choices).
    text, chunks = "", []
    for chunk in stream:
        text += chunk.choices[0].delta.content or ""
        chunks.append(chunk)
    assert text == "This is the ML Router"
    assert {c.id for c in chunks} == {stream.response.headers["x-generation-id"]}
    # Without include_usage: only the last chunk (the one with the finish_reason) has usage, with the cost.
    *relayed, final = chunks
    assert all(c.usage is None for c in relayed)
    assert final.choices[0].finish_reason == "stop"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (8, 5)
    cost = Decimal(str(final.usage.model_extra["cost"]))
    assert cost == cost_of(8, 5)
    assert before - shop.balance() == cost
    assert LedgerEntry.objects.get(reference=final.id).amount == -cost


def test_a_stream_with_include_usage_ends_with_openais_usage_chunk_carrying_the_charged_cost(router: str, shop: Shop):
    before = shop.balance()
    stream = client(router, shop.key).chat.completions.create(
        model=shop.model.public_id,
        messages=[{"role": "user", "content": "Hello there"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"emulator": {"completion_tokens": 5}},
    )
    text, chunks = "", []
    for chunk in stream:
        if chunk.choices:  # as OpenAI documents for include_usage: the last chunk has none
            text += chunk.choices[0].delta.content or ""
        chunks.append(chunk)
    assert text == "This is the ML Router"
    *relayed, final = chunks
    assert all(c.choices and c.usage is None for c in relayed)
    assert relayed[-1].choices[0].finish_reason == "stop"
    assert final.choices == []
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (8, 5)
    cost = Decimal(str(final.usage.model_extra["cost"]))
    assert cost == cost_of(8, 5)
    assert before - shop.balance() == cost
    assert LedgerEntry.objects.get(reference=final.id).amount == -cost


def test_tool_calls_round_trip(router: str, shop: Shop):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    api = client(router, shop.key)
    first = api.chat.completions.create(
        model=shop.model.public_id,
        messages=[{"role": "user", "content": "What's the weather in Moscow?"}],
        tools=tools,
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Moscow"}
    second = api.chat.completions.create(
        model=shop.model.public_id,
        messages=[
            {"role": "user", "content": "What's the weather in Moscow?"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny, +5"},
        ],
        tools=tools,
    )
    assert "Sunny" in second.choices[0].message.content


def test_streamed_tool_call_deltas_arrive_intact(router: str, shop: Shop):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    chunks = list(
        client(router, shop.key).chat.completions.create(
            model=shop.model.public_id,
            messages=[{"role": "user", "content": "Weather?"}],
            tools=tools,
            stream=True,
        )
    )
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function.name == "get_weather"
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Moscow"}


def test_json_mode_returns_a_json_object(router: str, shop: Shop):
    resp = client(router, shop.key).chat.completions.create(
        model=shop.model.public_id,
        messages=[{"role": "user", "content": "Answer in JSON"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(resp.choices[0].message.content), dict)


@pytest.mark.parametrize(
    ("setup", "exception", "status", "code"),
    [
        ("bad_key", openai.AuthenticationError, 401, "invalid_api_key"),
        ("unknown_model", openai.NotFoundError, 404, "model_not_found"),
        ("bad_body", openai.BadRequestError, 400, "invalid_request"),
        ("poor", openai.APIStatusError, 402, "insufficient_funds"),
        ("rate", openai.RateLimitError, 429, "rate_limit"),
        ("upstream_down", openai.InternalServerError, 502, "upstream_error"),
    ],
)
def test_every_error_raises_the_sdks_matching_exception(
    router, emulator_url, transactional_db, setup, exception, status, code
):
    from .conftest import make_shop

    shop = make_shop(
        emulator_url,
        funds="0.05" if setup == "poor" else "10",
        rpm=1 if setup == "rate" else 100,
        routes=[emulator_url.replace("/v1", "/fail/500/v1")] if setup == "upstream_down" else None,
    )
    api = client(router, "orb_live_" + "x" * 40 if setup == "bad_key" else shop.key)
    kwargs = {
        "model": "nope/none" if setup == "unknown_model" else shop.model.public_id,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if setup == "bad_body":
        kwargs["temperature"] = 5
    if setup == "rate":
        api.chat.completions.create(**kwargs)
    with pytest.raises(exception) as exc:
        api.chat.completions.create(**kwargs)
    assert exc.value.status_code == status
    assert exc.value.code == code
    assert exc.value.body["code"] == code


def test_402_and_429_messages_link_to_the_docs(router, emulator_url, transactional_db):
    from .conftest import make_shop

    poor = make_shop(emulator_url, funds="0.05")
    with pytest.raises(openai.APIStatusError) as exc:
        client(router, poor.key).chat.completions.create(
            model=poor.model.public_id, messages=[{"role": "user", "content": "hi"}]
        )
    host = router.removesuffix("/v1")
    assert exc.value.body["message"].endswith(f"See {host}/docs/errors/#insufficient_funds")

    limited = make_shop(emulator_url, rpm=1)
    api = client(router, limited.key)
    kwargs = {"model": limited.model.public_id, "messages": [{"role": "user", "content": "hi"}]}
    api.chat.completions.create(**kwargs)
    with pytest.raises(openai.RateLimitError) as exc:
        api.chat.completions.create(**kwargs)
    assert exc.value.body["message"].endswith(f"See {host}/docs/rate-limits/#rate_limit")
