"""Chat completions (and Messages, by way of them) translated onto routes that speak OpenAI's Responses API
(`Route.api = openai-responses`), in-process against a scripted provider. Each row of the translation table
"Chat completions on a Responses route" (docs pages "Chat completions" and "Responses (OpenAI)") is checked
here; the Responses surface passed through to such routes is tests/completions/test_responses_upstream.py.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from completions.models import Generation, Route
from tests.completions import test_chat_view
from tests.completions.test_anthropic_upstream import chat, cost, make_shop, messages, script_stream
from tests.completions.test_chat_view import (
    PROVIDER_KEY,
    FakeProvider,
    Shop,
    assert_nothing_moved,
    assert_settled_once,
    decimal_json,
    sse_data,
)
from tests.completions.test_messages import events, streamed
from tests.completions.test_responses_upstream import NATIVE_MODEL, USAGE, frames, response

provider_server = test_chat_view.provider_server
provider = test_chat_view.provider

pytestmark = pytest.mark.django_db

HI = [{"role": "user", "content": "hi"}]
TEXT = {
    "id": "msg_up",
    "type": "message",
    "status": "completed",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "Calling.", "annotations": []}],
}
REASONING = {
    "id": "rs_up",
    "type": "reasoning",
    "summary": [{"type": "summary_text", "text": "Think."}, {"type": "summary_text", "text": "Then act."}],
    "encrypted_content": "gAAAA-opaque",
}
CALL = {
    "id": "fc_up",
    "type": "function_call",
    "status": "completed",
    "call_id": "call_up_1",
    "name": "weather",
    "arguments": '{"city":"Oslo"}',
}
CHARGED = cost(1000, 50, read=400)  # USAGE at make_shop's prices


@pytest.fixture
def shop(provider: FakeProvider) -> Shop:
    return make_shop(provider, Route.Api.OPENAI_RESPONSES)


def ask(shop: Shop, **body: Any) -> Any:
    return chat(shop, {"model": shop.model.public_id, "messages": HI, **body})


# --- The request ------------------------------------------------------------------------------------------


def test_every_translated_chat_field_reaches_the_responses_route_as_a_responses_body(
    shop: Shop, provider: FakeProvider
):
    provider.answer(response([TEXT]))
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
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                    {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
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
            {"role": "user", "content": "And tomorrow?"},
        ],
        "max_completion_tokens": 300,
        "temperature": 0.3,
        "top_p": 0.9,
        "tools": [
            {
                "type": "function",
                "function": {"name": "weather", "description": "Weather.", "parameters": {"type": "object"}},
            },
            {"type": "function", "function": {"name": "exact", "parameters": {"type": "object"}, "strict": True}},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "forecast", "schema": {"type": "object"}, "strict": True},
        },
        "verbosity": "low",
        "reasoning_effort": "high",
        "user": "customer-7",
        "metadata": {"ticket": "42"},
        "prompt_cache_key": "thread-1",
        "service_tier": "flex",
        "safety_identifier": "hash-7",
        "some_provider_extension": {"kept": True},
    }

    answer = chat(shop, body)

    assert answer.status_code == 200, answer.content
    (received,) = provider.received
    assert received.path == "/v1/responses"
    assert received.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert received.body == {
        "model": NATIVE_MODEL,
        "instructions": "Be brief.\n\nUse metric.",
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is here?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
                    {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
                    {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
                ],
            },
            {"type": "message", "role": "assistant", "content": "Checking."},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Oslo"}'},
            {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "cold"},
            {"type": "function_call_output", "call_id": "call_2", "output": "warm"},
            {"type": "message", "role": "user", "content": "And tomorrow?"},
        ],
        "max_output_tokens": 300,
        "temperature": 0.3,
        "top_p": 0.9,
        "tools": [
            {
                "type": "function",
                "name": "weather",
                "description": "Weather.",
                "parameters": {"type": "object"},
                "strict": False,
            },
            {"type": "function", "name": "exact", "parameters": {"type": "object"}, "strict": True},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "text": {
            "format": {"type": "json_schema", "name": "forecast", "schema": {"type": "object"}, "strict": True},
            "verbosity": "low",
        },
        "reasoning": {"effort": "high"},
        "user": "customer-7",
        "metadata": {"ticket": "42"},
        "prompt_cache_key": "thread-1",
        "service_tier": "flex",
        "safety_identifier": "hash-7",
        "some_provider_extension": {"kept": True},
        "store": False,
    }


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", "auto"),
        ("required", "required"),
        ("none", "none"),
        ({"type": "function", "function": {"name": "weather"}}, {"type": "function", "name": "weather"}),
    ],
)
def test_tool_choice_maps_to_the_responses_one(shop: Shop, provider: FakeProvider, choice: Any, sent: Any):
    provider.answer(response([TEXT]))
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]

    assert ask(shop, tools=tools, tool_choice=choice).status_code == 200

    assert provider.received[0].body["tool_choice"] == sent


@pytest.mark.parametrize(
    ("response_format", "text"),
    [({"type": "json_object"}, {"format": {"type": "json_object"}}), ({"type": "text"}, None)],
)
def test_a_response_format_becomes_text_format(shop: Shop, provider: FakeProvider, response_format: dict, text: Any):
    provider.answer(response([TEXT]))

    assert ask(shop, response_format=response_format).status_code == 200

    assert provider.received[0].body.get("text") == text


def test_fields_responses_cannot_say_are_dropped_and_max_tokens_is_the_output_limit(shop: Shop, provider: FakeProvider):
    provider.answer(response([TEXT]))

    answer = ask(
        shop,
        max_tokens=20,
        seed=7,
        stop=["END"],
        logit_bias={"50256": -100},
        presence_penalty=0.5,
        frequency_penalty=0.5,
        logprobs=True,
        top_logprobs=2,
        n=1,
        audio={"voice": "alloy", "format": "wav"},
        modalities=["text"],
        prediction={"type": "content", "content": "x"},
        web_search_options={},
        functions=[{"name": "old_style", "parameters": {"type": "object"}}],
        function_call="auto",
        stream_options=None,
        store=True,
    )

    assert answer.status_code == 200, answer.content
    assert provider.received[0].body == {
        "model": NATIVE_MODEL,
        "input": [{"type": "message", "role": "user", "content": "hi"}],
        "max_output_tokens": 20,
        "store": True,  # the client's own choice to keep it at the provider
    }


@pytest.mark.parametrize("asked", [{"reasoning_effort": "low"}, {"reasoning": {"effort": "low"}}])
def test_a_reasoning_effort_becomes_reasoning_effort(shop: Shop, provider: FakeProvider, asked: dict):
    provider.answer(response([TEXT]))

    assert ask(shop, **asked).status_code == 200

    assert provider.received[0].body["reasoning"] == {"effort": "low"}


def test_a_streamed_chat_request_is_a_streamed_responses_request(shop: Shop, provider: FakeProvider):
    script_stream(provider, frames(*BEGIN, ("response.completed", {"response": response([TEXT])})))

    answer = ask(shop, stream=True, stream_options={"include_usage": True})

    streamed(answer)
    body = provider.received[0].body
    assert body["stream"] is True
    assert "stream_options" not in body  # the final event always carries the usage


# --- The plain answer -------------------------------------------------------------------------------------


def test_a_response_comes_back_as_a_chat_completion_with_its_exact_cost(shop: Shop, provider: FakeProvider):
    provider.answer(response([REASONING, TEXT, CALL]))

    answer = ask(shop)

    assert answer.status_code == 200, answer.content
    body = decimal_json(answer.content)
    generation_id = answer["X-Generation-Id"]
    assert (body["id"], body["object"], body["model"]) == (generation_id, "chat.completion", shop.model.public_id)
    assert body["created"] == 1700000000  # the response's created_at
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Calling."
    assert choice["message"]["reasoning"] == "Think.\n\nThen act."  # the summary, under OpenRouter's name
    assert choice["message"]["tool_calls"] == [
        {"id": "call_up_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}
    ]
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (1000, 50, 1050)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 400}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 20}
    assert usage["cost"] == CHARGED
    assert_settled_once(shop, generation_id, CHARGED)
    generation = Generation.objects.get(pk=generation_id)
    assert (generation.cached_tokens, generation.upstream_id, generation.finish_reason) == (
        400,
        "resp_upstream_1",
        "tool_calls",
    )


def test_a_refusal_comes_back_as_the_messages_refusal(shop: Shop, provider: FakeProvider):
    refused = {**TEXT, "content": [{"type": "refusal", "refusal": "I can't help with that."}]}
    provider.answer(response([refused]))

    message = ask(shop).json()["choices"][0]["message"]

    assert (message["content"], message["refusal"]) == (None, "I can't help with that.")


def test_reasoning_text_comes_back_as_reasoning_when_there_is_no_summary(shop: Shop, provider: FakeProvider):
    thought = {
        "id": "rs_up",
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "Hm."}],
    }
    provider.answer(response([thought, TEXT]))

    message = ask(shop).json()["choices"][0]["message"]

    assert (message["reasoning"], message["content"]) == ("Hm.", "Calling.")


@pytest.mark.parametrize(
    ("output", "status", "details", "finish_reason"),
    [
        ([TEXT], "completed", None, "stop"),
        ([TEXT, CALL], "completed", None, "tool_calls"),
        ([TEXT], "incomplete", {"reason": "max_output_tokens"}, "length"),
        ([TEXT], "incomplete", {"reason": "content_filter"}, "content_filter"),
    ],
)
def test_status_and_incomplete_details_become_finish_reasons(
    shop: Shop, provider: FakeProvider, output: list, status: str, details: Any, finish_reason: str
):
    provider.answer(response(output, status=status, incomplete_details=details))

    assert ask(shop).json()["choices"][0]["finish_reason"] == finish_reason


def test_a_responses_client_error_is_passed_on_in_the_chat_shape_and_not_charged(shop: Shop, provider: FakeProvider):
    error = {"message": "Invalid 'max_output_tokens': too small.", "type": "invalid_request_error", "code": None}
    provider.answer({"error": {**error, "param": "max_output_tokens"}}, 400)

    answer = ask(shop)

    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "Invalid 'max_output_tokens': too small."
    assert_nothing_moved(shop)


def test_a_responses_route_failing_falls_back_to_the_next_route(provider: FakeProvider):
    shop = make_shop(provider, Route.Api.OPENAI_RESPONSES, Route.Api.ANTHROPIC_MESSAGES)
    provider.answer({"error": {"message": "overloaded", "type": "server_error"}}, 503)
    provider.answer({**ANTHROPIC_TEXT})

    answer = ask(shop)

    assert answer.status_code == 200, answer.content
    assert [r.path for r in provider.received] == ["/v1/responses", "/v1/messages"]
    assert answer.json()["choices"][0]["message"]["content"] == "from anthropic"


ANTHROPIC_TEXT = {
    "id": "msg_upstream_1",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [{"type": "text", "text": "from anthropic"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 10, "output_tokens": 5},
}


# --- The stream -------------------------------------------------------------------------------------------

SNAPSHOT = response([], status="in_progress", usage=None)
BEGIN = [("response.created", {"response": SNAPSHOT}), ("response.in_progress", {"response": SNAPSHOT})]
REASONING_EVENTS = [
    ("response.output_item.added", {"output_index": 0, "item": {**REASONING, "summary": []}}),
    ("response.reasoning_summary_part.added", {"item_id": "rs_up", "output_index": 0, "summary_index": 0}),
    ("response.reasoning_summary_text.delta", {"item_id": "rs_up", "output_index": 0, "delta": "Think."}),
    ("response.reasoning_summary_part.added", {"item_id": "rs_up", "output_index": 0, "summary_index": 1}),
    ("response.reasoning_summary_text.delta", {"item_id": "rs_up", "output_index": 0, "delta": "Then act."}),
    ("response.output_item.done", {"output_index": 0, "item": REASONING}),
]
TEXT_EVENTS = [
    ("response.output_item.added", {"output_index": 1, "item": {**TEXT, "status": "in_progress", "content": []}}),
    ("response.output_text.delta", {"item_id": "msg_up", "output_index": 1, "content_index": 0, "delta": "Call"}),
    ("response.output_text.delta", {"item_id": "msg_up", "output_index": 1, "content_index": 0, "delta": "ing."}),
    ("response.output_item.done", {"output_index": 1, "item": TEXT}),
]
CALL_EVENTS = [
    ("response.output_item.added", {"output_index": 2, "item": {**CALL, "status": "in_progress", "arguments": ""}}),
    ("response.function_call_arguments.delta", {"item_id": "fc_up", "output_index": 2, "delta": '{"city":'}),
    ("response.function_call_arguments.delta", {"item_id": "fc_up", "output_index": 2, "delta": '"Oslo"}'}),
    ("response.output_item.done", {"output_index": 2, "item": CALL}),
]


def chunks_of(answer: Any) -> list[dict]:
    return [json.loads(d, parse_float=Decimal) for d in sse_data(streamed(answer)) if d != b"[DONE]"]


@pytest.mark.django_db(transaction=True)
def test_a_responses_stream_comes_back_as_chat_chunks_with_the_exact_cost_last(shop: Shop, provider: FakeProvider):
    completed = ("response.completed", {"response": response([REASONING, TEXT, CALL])})
    script_stream(provider, frames(*BEGIN, *REASONING_EVENTS, *TEXT_EVENTS, *CALL_EVENTS, completed))

    answer = ask(shop, stream=True, stream_options={"include_usage": True})

    chunks = chunks_of(answer)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert {(c["object"], c["created"]) for c in chunks} == {("chat.completion.chunk", 1700000000)}
    assert "".join(d.get("reasoning", "") for d in deltas) == "Think.\n\nThen act."
    assert "".join(d.get("content") or "" for d in deltas) == "Calling."
    calls = [call for d in deltas for call in d.get("tool_calls", ())]
    assert calls[0] == {
        "index": 0,
        "id": "call_up_1",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city":"Oslo"}'
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cost"]) == (1000, 50, CHARGED)
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 20}
    assert_settled_once(shop, answer["X-Generation-Id"], CHARGED)
    generation = Generation.objects.get(pk=answer["X-Generation-Id"])
    assert (generation.status, generation.upstream_id) == ("completed", "resp_upstream_1")


@pytest.mark.django_db(transaction=True)
def test_reasoning_text_and_refusal_deltas_become_chat_deltas(shop: Shop, provider: FakeProvider):
    where = {"item_id": "x", "output_index": 0, "content_index": 0}
    upstream = [
        ("response.reasoning_text.delta", {**where, "delta": "Hm."}),
        ("response.refusal.delta", {**where, "delta": "I can't."}),
        ("response.completed", {"response": response([TEXT])}),
    ]
    script_stream(provider, frames(*BEGIN, *upstream))

    deltas = [c["choices"][0]["delta"] for c in chunks_of(ask(shop, stream=True)) if c["choices"]]

    assert [d for d in deltas if d.get("reasoning") or d.get("refusal")] == [
        {"reasoning": "Hm."},
        {"refusal": "I can't."},
    ]


@pytest.mark.django_db(transaction=True)
def test_an_incomplete_responses_stream_finishes_with_length(shop: Shop, provider: FakeProvider):
    incomplete = response([TEXT], status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    script_stream(provider, frames(*BEGIN, *TEXT_EVENTS, ("response.incomplete", {"response": incomplete})))

    answer = ask(shop, stream=True, stream_options={"include_usage": True})

    chunks = chunks_of(answer)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    assert chunks[-1]["usage"]["cost"] == CHARGED
    assert_settled_once(shop, answer["X-Generation-Id"], CHARGED)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("ending", "charged"),
    [
        # The provider's own failure, with the usage it reports: charged for that.
        (
            (
                "response.failed",
                {
                    "response": response(
                        [TEXT],
                        status="failed",
                        usage={**USAGE, "output_tokens": 10},
                        error={"code": "x", "message": "y"},
                    )
                },
            ),
            cost(1000, 10, read=400),
        ),
        # An error event: charged for what was generated (our estimate: nothing reported).
        (("error", {"code": "server_error", "message": "boom", "param": None}), None),
    ],
)
def test_a_failed_responses_stream_ends_the_chat_stream_with_an_error_charged_once(
    shop: Shop, provider: FakeProvider, ending: tuple, charged: Decimal | None
):
    script_stream(provider, frames(*BEGIN, *TEXT_EVENTS[:2], ending))

    answer = ask(shop, stream=True)

    data = sse_data(streamed(answer))
    assert json.loads(data[-2])["error"]["message"].startswith("Stream interrupted")
    generation = Generation.objects.get(pk=answer["X-Generation-Id"])
    assert generation.status == Generation.Status.FAILED
    assert generation.cost > 0  # something was generated: it is charged, once
    assert_settled_once(shop, generation.id, charged if charged is not None else generation.cost)


# --- Messages, by way of the chat form ----------------------------------------------------------------------


def test_a_messages_request_reaches_a_responses_route_translated_and_answers_as_anthropic(
    shop: Shop, provider: FakeProvider
):
    provider.answer(response([TEXT, CALL]))
    tools = [{"name": "weather", "input_schema": {"type": "object"}}]

    answer = messages(
        shop, {"model": shop.model.public_id, "max_tokens": 4000, "system": "Be brief.", "messages": HI, "tools": tools}
    )

    assert answer.status_code == 200, answer.content
    (received,) = provider.received
    assert received.path == "/v1/responses"
    assert (received.body["instructions"], received.body["max_output_tokens"]) == ("Be brief.", 4000)
    assert received.body["tools"][0]["name"] == "weather"
    body = decimal_json(answer.content)
    assert (body["type"], body["stop_reason"]) == ("message", "tool_use")
    assert body["content"] == [
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "call_up_1", "name": "weather", "input": {"city": "Oslo"}},
    ]
    assert body["usage"]["cost"] == CHARGED, body["usage"]
    assert_settled_once(shop, answer["X-Generation-Id"], CHARGED)


@pytest.mark.django_db(transaction=True)
def test_a_messages_stream_on_a_responses_route_is_anthropics_event_sequence(shop: Shop, provider: FakeProvider):
    completed = ("response.completed", {"response": response([TEXT])})
    script_stream(provider, frames(*BEGIN, *TEXT_EVENTS, completed))

    answer = messages(shop, {"model": shop.model.public_id, "max_tokens": 4000, "messages": HI, "stream": True})

    got = events(streamed(answer))
    names = [name for name, _ in got if name != "ping"]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    text = "".join(d["delta"].get("text", "") for name, d in got if name == "content_block_delta")
    assert text == "Calling."
    delta = next(d for name, d in got if name == "message_delta")
    assert (delta["delta"]["stop_reason"], delta["usage"]["cost"]) == ("end_turn", CHARGED)
    assert_settled_once(shop, answer["X-Generation-Id"], CHARGED)
