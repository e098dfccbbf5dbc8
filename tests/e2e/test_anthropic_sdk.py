"""The official Anthropic Python SDK against a live router: /v1/messages translated onto the emulator's
OpenAI-compatible route, charged exactly once, and our errors raised as the SDK's own exception classes."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import pytest

from .conftest import Shop, assert_settled_once, cost_of, emulated_prompt_tokens, generation_settled, make_shop

HELLO = [{"role": "user", "content": "Hello there"}]


def client(router: str, key: str) -> anthropic.Anthropic:
    # The SDK appends /v1/messages to its base URL.
    return anthropic.Anthropic(base_url=router.removesuffix("/v1"), api_key=key, max_retries=0, timeout=20)


def test_a_plain_message_reports_its_exact_cost_and_charges_it(router: str, shop: Shop):
    before = shop.balance()

    raw = client(router, shop.key).messages.with_raw_response.create(
        model=shop.model.public_id, max_tokens=100, messages=HELLO
    )

    message = raw.parse()
    prompt = emulated_prompt_tokens(HELLO)
    completion = len(message.content[0].text.split())
    cost = cost_of(prompt, completion)
    assert message.id == raw.headers["x-generation-id"]
    assert (message.type, message.role, message.model) == ("message", "assistant", shop.model.public_id)
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (prompt, completion)
    assert json.loads(raw.http_response.text, parse_float=Decimal)["usage"]["cost"] == cost
    assert before - shop.balance() == cost
    assert_settled_once(generation_settled(message.id), cost)


def test_a_stream_yields_its_text_and_the_final_message(router: str, shop: Shop):
    with client(router, shop.key).messages.stream(model=shop.model.public_id, max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == final.content[0].text and text
    assert (final.id, final.model, final.stop_reason) == (final.id, shop.model.public_id, "end_turn")
    prompt, completion = emulated_prompt_tokens(HELLO), len(text.split())
    assert (final.usage.input_tokens, final.usage.output_tokens) == (prompt, completion)
    assert_settled_once(generation_settled(final.id), cost_of(prompt, completion))


def test_a_streams_message_delta_carries_the_charged_cost(router: str, shop: Shop):
    events = list(
        client(router, shop.key).messages.create(
            model=shop.model.public_id, max_tokens=100, messages=HELLO, stream=True
        )
    )

    assert [e.type for e in events][:2] == ["message_start", "content_block_start"]
    assert [e.type for e in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    (delta,) = [e for e in events if e.type == "message_delta"]
    cost = cost_of(emulated_prompt_tokens(HELLO), len(text.split()))
    # The SDK keeps the fields it does not know: our cost is exact in the event's usage.
    assert Decimal(str(delta.usage.model_extra["cost"])) == cost
    assert_settled_once(generation_settled(events[0].message.id), cost)


def test_a_tool_round_trip_is_tool_use_then_an_answer_from_the_tool_result(router: str, shop: Shop):
    api = client(router, shop.key)
    tools = [
        {
            "name": "weather",
            "description": "The weather in a city.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    question = [{"role": "user", "content": "Weather in Oslo?"}]

    first = api.messages.create(model=shop.model.public_id, max_tokens=100, messages=question, tools=tools)

    assert first.stop_reason == "tool_use"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "weather" and isinstance(call.input, dict)
    answer = api.messages.create(
        model=shop.model.public_id,
        max_tokens=100,
        tools=tools,
        messages=[
            *question,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
        ],
    )
    assert answer.stop_reason == "end_turn"
    assert "sunny" in answer.content[0].text
    # Both settled before either is checked: the account holds nothing only once the second has settled too.
    generations = [generation_settled(generation_id) for generation_id in (first.id, answer.id)]
    for generation in generations:
        assert generation.cost > 0
        assert_settled_once(generation, generation.cost)


@pytest.mark.parametrize(
    ("setup", "exception", "status", "kind"),
    [
        ("bad_key", anthropic.AuthenticationError, 401, "authentication_error"),
        ("bad_body", anthropic.BadRequestError, 400, "invalid_request_error"),
        ("unknown_model", anthropic.NotFoundError, 404, "not_found_error"),
        ("suspended", anthropic.PermissionDeniedError, 403, "permission_error"),
        ("rate", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("poor", anthropic.APIStatusError, 402, "billing_error"),
    ],
)
def test_every_error_raises_the_sdks_matching_exception(
    router, emulator_url, transactional_db, setup, exception, status, kind
):
    shop = make_shop(emulator_url, funds="0.05" if setup == "poor" else "10", rpm=1 if setup == "rate" else 100)
    if setup == "suspended":
        from accounts.models import Account

        Account.objects.filter(pk=shop.account_id).update(status=Account.Status.SUSPENDED)
    api = client(router, "orb_live_" + "x" * 40 if setup == "bad_key" else shop.key)
    kwargs = {
        "model": "nope/none" if setup == "unknown_model" else shop.model.public_id,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if setup == "bad_body":
        kwargs["max_tokens"] = 0
    if setup == "rate":
        api.messages.create(**kwargs)

    with pytest.raises(exception) as exc:
        api.messages.create(**kwargs)

    assert exc.value.status_code == status
    assert exc.value.body["type"] == "error"
    assert exc.value.body["error"]["type"] == kind


def test_count_tokens_answers_our_estimate(router: str, shop: Shop):
    counted = client(router, shop.key).messages.count_tokens(model=shop.model.public_id, messages=HELLO)
    assert counted.input_tokens > 0


THOUGHT = "First I read the question, then I decide"  # the emulator's reasoning model, 8 words


@pytest.fixture
def reasoner(transactional_db, emulator_url) -> Shop:
    return make_shop(emulator_url, upstream_model="emulator-reasoner")


def test_a_reasoning_models_thoughts_are_a_thinking_block_before_the_text(router: str, reasoner: Shop):
    message = client(router, reasoner.key).messages.create(
        model=reasoner.model.public_id, max_tokens=100, messages=HELLO
    )

    assert [block.type for block in message.content] == ["thinking", "text"]
    assert (message.content[0].thinking, message.content[0].signature) == (THOUGHT, "")
    assert message.usage.output_tokens == 8 + len(message.content[1].text.split())


def test_a_streamed_reasoning_models_thoughts_are_thinking_deltas(router: str, reasoner: Shop):
    with client(router, reasoner.key).messages.stream(
        model=reasoner.model.public_id, max_tokens=100, messages=HELLO
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    thinking = [
        e.delta.thinking for e in events if e.type == "content_block_delta" and e.delta.type == "thinking_delta"
    ]
    assert "".join(thinking) == THOUGHT and len(thinking) == 8
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == THOUGHT
    assert_settled_once(generation_settled(final.id), cost_of(emulated_prompt_tokens(HELLO), final.usage.output_tokens))
