"""The official OpenAI Python SDK's Responses API against a live router: /v1/responses translated onto the
emulator's chat route, charged exactly once with `usage.cost`, stored, continued, read back and deleted."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest
import requests
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from completions.models import Generation, StoredResponse

from .conftest import Shop, assert_settled_once, cost_of, emulated_prompt_tokens, generation_settled, make_shop

HELLO = "Hello there"
PROMPT = emulated_prompt_tokens([{"role": "user", "content": HELLO}])  # 8
ANSWER5 = "This is the ML Router"  # the emulator's first five words


@pytest.fixture(autouse=True)
def _written_before_teardown(router: str, shop: Shop):
    """A plain answer is charged and stored after it is sent: let the router finish before the tables go.

    A read on the router waits for its pending commits for the account (relay.settlements_wait_for).
    """
    yield
    requests.get(f"{router}/credits", headers={"Authorization": f"Bearer {shop.key}"}, timeout=20)


def client(router: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=router, api_key=key, max_retries=0, timeout=20)


def strictly_typed(events: list) -> None:
    """Every event has every field the SDK's types require (the SDK itself builds them without checking)."""
    for event in events:
        TypeAdapter(ResponseStreamEvent).validate_python(event.model_dump(mode="json", exclude_unset=True))


def exact(text: str) -> dict:
    return json.loads(text, parse_float=Decimal)


def test_a_plain_response_reports_its_exact_cost_charges_it_once_and_is_stored(router: str, shop: Shop):
    before = shop.balance()

    raw = client(router, shop.key).responses.with_raw_response.create(
        model=shop.model.public_id, input=HELLO, extra_body={"emulator": {"completion_tokens": 5}}
    )

    response = raw.parse()
    cost = cost_of(PROMPT, 5)
    assert response.id == raw.headers["x-generation-id"]
    assert (response.object, response.status, response.model) == ("response", "completed", shop.model.public_id)
    assert response.output_text == ANSWER5
    (item,) = response.output
    assert (item.type, item.role, item.status, item.content[0].type) == (
        "message",
        "assistant",
        "completed",
        "output_text",
    )
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (PROMPT, 5, PROMPT + 5)
    assert (usage.input_tokens_details.cached_tokens, usage.output_tokens_details.reasoning_tokens) == (0, 0)
    assert exact(raw.http_response.text)["usage"]["cost"] == cost
    Response.model_validate_json(raw.http_response.text)  # every field the SDK's types require, strictly
    assert before - shop.balance() == cost
    generation = generation_settled(response.id)
    assert (generation.surface, generation.status) == ("responses", "completed")
    assert_settled_once(generation, cost)
    # Stored after its charge: the same connection reads it back at once.
    assert client(router, shop.key).responses.retrieve(response.id).output_text == ANSWER5
    read = requests.get(
        f"{router}/generation", params={"id": response.id}, headers={"Authorization": f"Bearer {shop.key}"}
    )
    assert read.json()["data"]["surface"] == "responses"


def test_a_stream_sends_the_typed_events_in_sequence_and_the_completed_response_carries_the_cost(
    router: str, shop: Shop
):
    events = list(
        client(router, shop.key).responses.create(
            model=shop.model.public_id, input=HELLO, stream=True, extra_body={"emulator": {"completion_tokens": 5}}
        )
    )

    strictly_typed(events)
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == ANSWER5
    final = events[-1].response
    assert (final.status, final.output_text, final.usage.output_tokens) == ("completed", ANSWER5, 5)
    cost = cost_of(PROMPT, 5)
    assert Decimal(str(final.usage.model_extra["cost"])) == cost
    assert_settled_once(generation_settled(final.id), cost)


def test_the_sdks_stream_helper_gives_the_text_and_the_final_response(router: str, shop: Shop):
    with client(router, shop.key).responses.stream(
        model=shop.model.public_id,
        input=HELLO,
        instructions="Be brief.",
        extra_body={"emulator": {"completion_tokens": 5}},
    ) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()

    prompt = emulated_prompt_tokens([{"role": "system", "content": "Be brief."}, {"role": "user", "content": HELLO}])
    assert text == final.output_text == ANSWER5
    assert (final.instructions, final.usage.input_tokens) == ("Be brief.", prompt)
    assert_settled_once(generation_settled(final.id), cost_of(prompt, 5))


def test_a_function_tool_round_trip_is_a_function_call_then_an_answer_from_its_output(router: str, shop: Shop):
    api = client(router, shop.key)
    tools = [
        {
            "type": "function",
            "name": "weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
    question = [{"role": "user", "content": "Weather in Oslo?"}]

    first = api.responses.create(model=shop.model.public_id, input=question, tools=tools)

    (call,) = first.output
    assert (call.type, call.name, json.loads(call.arguments)) == ("function_call", "weather", {"city": "Moscow"})
    answer = api.responses.create(
        model=shop.model.public_id,
        tools=tools,
        input=[*question, call, {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert answer.output_text.startswith("The tool returned: sunny")
    generations = [generation_settled(generation_id) for generation_id in (first.id, answer.id)]
    for generation in generations:  # once both are settled: nothing is left held on the account
        assert generation.cost > 0
        assert_settled_once(generation, generation.cost)


def test_a_streamed_function_call_has_its_argument_events(router: str, shop: Shop):
    tools = [
        {
            "type": "function",
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    events = list(
        client(router, shop.key).responses.create(
            model=shop.model.public_id, input="Weather?", tools=tools, tool_choice="required", stream=True
        )
    )
    strictly_typed(events)
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
    final = events[-1].response
    (call,) = final.output
    assert (call.type, call.name, call.arguments) == ("function_call", "weather", done.arguments)
    assert call.call_id == "call_emu_0"
    assert_settled_once(generation_settled(final.id), Generation.objects.get(pk=final.id).cost)


def test_previous_response_id_continues_the_conversation_for_its_owner_only(router: str, shop: Shop, emulator_url):
    from .conftest import make_shop

    api = client(router, shop.key)
    first = api.responses.create(
        model=shop.model.public_id, input=HELLO, extra_body={"emulator": {"completion_tokens": 5}}
    )

    second = api.responses.create(
        model=shop.model.public_id,
        input="And again",
        previous_response_id=first.id,
        extra_body={"emulator": {"completion_tokens": 3}},
    )

    conversation = [
        {"role": "user", "content": HELLO},
        {"role": "assistant", "content": ANSWER5},
        {"role": "user", "content": "And again"},
    ]
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens == emulated_prompt_tokens(conversation)
    assert_settled_once(generation_settled(second.id), cost_of(emulated_prompt_tokens(conversation), 3))
    items = api.responses.input_items.list(second.id, order="asc")
    assert [i.type for i in items.data] == ["message", "message", "message"]
    assert [i.role for i in items.data] == ["user", "assistant", "user"]

    stranger = make_shop(emulator_url)
    with pytest.raises(openai.NotFoundError) as exc:
        client(router, stranger.key).responses.create(
            model=stranger.model.public_id, input="Hi", previous_response_id=first.id
        )
    assert exc.value.body["param"] == "previous_response_id"
    assert not Generation.objects.filter(account_id=stranger.account_id).exists()  # refused before any hold
    with pytest.raises(openai.NotFoundError):
        client(router, stranger.key).responses.retrieve(first.id)


def test_store_false_keeps_nothing(router: str, shop: Shop):
    api = client(router, shop.key)
    for stream in (False, True):
        created = api.responses.create(model=shop.model.public_id, input=HELLO, store=False, stream=stream)
        response = list(created)[-1].response if stream else created
        assert response.store is False
        generation = generation_settled(response.id)
        assert_settled_once(generation, generation.cost)
        with pytest.raises(openai.NotFoundError):
            api.responses.retrieve(response.id)
        assert not StoredResponse.objects.filter(pk=response.id).exists()


def test_a_stored_response_is_retrieved_listed_page_by_page_and_deleted(router: str, shop: Shop):
    api = client(router, shop.key)
    items = [{"role": "user", "content": f"Message {n}"} for n in range(5)]
    created = api.responses.create(model=shop.model.public_id, input=items, metadata={"ticket": "42"})

    retrieved = api.responses.retrieve(created.id)
    assert (retrieved.id, retrieved.output_text, retrieved.metadata) == (
        created.id,
        created.output_text,
        {"ticket": "42"},
    )
    assert exact(api.responses.with_raw_response.retrieve(created.id).http_response.text)["usage"]["cost"] == (
        Generation.objects.get(pk=created.id).cost
    )
    first_page = api.responses.input_items.list(created.id, limit=2)  # newest first by default
    assert [i.content[0].text for i in first_page.data] == ["Message 4", "Message 3"]
    assert first_page.has_more
    every = [i.content[0].text for i in api.responses.input_items.list(created.id, limit=2)]  # the SDK pages on
    assert every == [f"Message {n}" for n in (4, 3, 2, 1, 0)]
    after = api.responses.input_items.list(created.id, order="asc", after=first_page.data[0].id)
    assert after.data == [] and not after.has_more

    deleted = requests.delete(f"{router}/responses/{created.id}", headers={"Authorization": f"Bearer {shop.key}"})
    assert deleted.json() == {"id": created.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        api.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        api.responses.delete(created.id)
    assert Generation.objects.get(pk=created.id).status == "completed"  # the generation and its charge stay


def test_json_schema_text_format_and_reasoning_effort_translate(router: str, shop: Shop):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    response = client(router, shop.key).responses.create(
        model=shop.model.public_id,
        input=HELLO,
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
        reasoning={"effort": "low"},
    )
    assert json.loads(response.output_text) == {"city": "Moscow"}
    assert response.reasoning.effort == "low"


def test_a_built_in_tool_is_a_400_naming_it(router: str, shop: Shop):
    with pytest.raises(openai.BadRequestError) as exc:
        client(router, shop.key).responses.create(
            model=shop.model.public_id, input=HELLO, tools=[{"type": "web_search"}]
        )
    assert exc.value.body["code"] == "invalid_request"
    assert exc.value.body["param"] == "tools[0]"
    assert "'web_search'" in exc.value.body["message"]


THOUGHT = "First I read the question, then I decide"  # the emulator's reasoning model, 8 words


@pytest.fixture
def reasoner(transactional_db, emulator_url) -> Shop:
    return make_shop(emulator_url, upstream_model="emulator-reasoner")


def test_a_reasoning_models_thoughts_are_a_reasoning_item_with_its_summary_and_are_stored(router: str, reasoner: Shop):
    response = client(router, reasoner.key).responses.create(
        model=reasoner.model.public_id, input=HELLO, extra_body={"emulator": {"completion_tokens": 5}}
    )

    reasoning, message = response.output
    assert (reasoning.type, [(s.type, s.text) for s in reasoning.summary]) == ("reasoning", [("summary_text", THOUGHT)])
    assert (message.type, response.output_text) == ("message", ANSWER5)
    assert (response.usage.output_tokens, response.usage.output_tokens_details.reasoning_tokens) == (13, 8)
    stored = client(router, reasoner.key).responses.retrieve(response.id)
    assert stored.output[0].summary[0].text == THOUGHT


def test_a_streamed_reasoning_models_thoughts_are_reasoning_summary_events(router: str, reasoner: Shop):
    events = list(
        client(router, reasoner.key).responses.create(
            model=reasoner.model.public_id, input=HELLO, stream=True, extra_body={"emulator": {"completion_tokens": 5}}
        )
    )

    strictly_typed(events)
    deltas = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    assert "".join(deltas) == THOUGHT and len(deltas) == 8
    kinds = [e.type for e in events]
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index("response.output_text.delta")
    final = events[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == THOUGHT
    stored = client(router, reasoner.key).responses.retrieve(final.id)
    assert [item.type for item in stored.output] == ["reasoning", "message"]
