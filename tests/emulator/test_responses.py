"""The emulator's native Responses API: the chat endpoint's deterministic answer written as a `response`
object or as its typed events (each with its `sequence_number`), function calls, fail modes, routing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from emulator.core import StreamDropped
from emulator.responses import responses_reply
from tests.emulator.test_emulator import gevent_url, url, wsgiref_url  # noqa: F401 (fixtures)
from tests.emulator.test_routing import routed  # noqa: F401 (fixture)

TOOLS = [
    {
        "type": "function",
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
EVENTS = TypeAdapter(ResponseStreamEvent)


def answer(**body: Any) -> dict[str, Any]:
    reply = responses_reply(json.dumps(body).encode(), {})
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def events(**body: Any) -> list[Any]:
    reply = responses_reply(json.dumps({**body, "stream": True}).encode(), {})
    assert reply.status == 200 and reply.events is not None
    out = []
    for raw in reply.events:
        if isinstance(raw, bytes):
            kind, data = raw.decode().strip().split("\n")
            event = EVENTS.validate_python(json.loads(data.removeprefix("data: ")))  # the SDK's own types
            assert kind == f"event: {event.type}"
            out.append(event)
    return out


def test_a_plain_answer_is_the_chat_answer_as_a_response_object() -> None:
    body = answer(model="emulator-small", input="Hello there, emulator!", instructions="Be brief.")
    response = Response.model_validate(body)
    assert (response.object, response.status, response.instructions) == ("response", "completed", "Be brief.")
    assert response.output_text == "This is the ML Router upstream emulator speaking. It returns deterministic text"
    # The chat count: 3 + (3 + 2 words of instructions) + (3 + 3 words of input); 12 words out.
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (14, 12, 26)


def test_max_output_tokens_makes_it_incomplete() -> None:
    response = Response.model_validate(answer(input="Hi", max_output_tokens=3))
    assert (response.status, response.incomplete_details.reason, response.output_text) == (
        "incomplete",
        "max_output_tokens",
        "This is the",
    )


def test_a_stream_is_the_typed_event_sequence_numbered_from_zero() -> None:
    stream = events(input="Hi", emulator={"completion_tokens": 3})
    assert [e.type for e in stream] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in stream] == list(range(len(stream)))
    assert stream[-1].response.output_text == "".join(e.delta for e in stream[4:7]) == "This is the"
    assert stream[-1].response.usage.output_tokens == 3


def test_a_function_call_and_its_output_make_a_round_trip() -> None:
    first = Response.model_validate(answer(input="Weather?", tools=TOOLS))
    (call,) = first.output
    assert (call.type, call.name, call.call_id, json.loads(call.arguments)) == (
        "function_call",
        "weather",
        "call_emu_0",
        {"city": "Moscow"},
    )
    second = answer(
        input=[
            {"role": "user", "content": "Weather?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=TOOLS,
    )
    assert Response.model_validate(second).output_text.startswith("The tool returned: sunny")

    stream = events(input="Weather?", tools=TOOLS)
    arguments = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
    (done,) = [e for e in stream if e.type == "response.function_call_arguments.done"]
    assert arguments == done.arguments == call.arguments


def test_fail_modes_answer_statuses_or_break_the_stream() -> None:
    assert responses_reply(b'{"input": "Hi"}', {}, "503").status == 503
    assert responses_reply(b'{"input": []}', {}).status == 400
    broken = responses_reply(b'{"input": "Hi", "stream": true, "emulator": {"fail": "drop_mid_stream"}}', {})
    with pytest.raises(StreamDropped):
        list(broken.events)
    failed = responses_reply(b'{"input": "Hi", "stream": true, "emulator": {"fail": "error_mid_stream"}}', {})
    last = [e for e in failed.events if isinstance(e, bytes)][-1]
    assert last.startswith(b"event: error\n")


def test_it_is_served_standalone_and_under_the_project(url: str, routed, client) -> None:  # noqa: F811
    reply = requests.post(f"{url}/v1/responses", json={"input": "Hi"}, timeout=5)
    assert reply.status_code == 200 and reply.json()["object"] == "response"
    routed(DEBUG=True, EMULATOR_ENABLED=False, EMULATOR_API_KEY="")
    response = client.post("/emulator/v1/responses", {"input": "Hi"}, content_type="application/json")
    assert response.status_code == 200 and response.json()["status"] == "completed"
