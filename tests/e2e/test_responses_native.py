"""Responses routes (`api: openai-responses`) against a live router and the emulator's native /v1/responses: the
official OpenAI Python SDK passed through natively (plain, stream, a function tool round trip continued by
`previous_response_id`), the provider getting the client's own body (reasoning items, `include`, built-in
tools), `usage.cost` equal to the one charge in the ledger, every ending of a native stream settled once, and
openai-python's chat completions translated onto the same route."""

from __future__ import annotations

import json
import socket
import struct
from decimal import Decimal
from urllib.parse import urlsplit

import openai
import pytest
import requests

from .conftest import Shop, assert_settled_once, cost_of, emulated_prompt_tokens, generation_settled

HELLO = "Hello there"
ANSWER5 = "This is the ML Router"  # the emulator's first five words
REASONING = {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA-opaque"}


@pytest.fixture
def native(transactional_db, emulator_url) -> Shop:
    """A model whose only route speaks the Responses API (the emulator's /v1/responses)."""
    return make_native(emulator_url)


def make_native(emulator_url: str) -> Shop:
    from .conftest import make_shop

    return make_shop(emulator_url, upstream_model="emulator-responses", api="openai-responses")


def client(router: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=router, api_key=key, max_retries=0, timeout=20)


def test_a_plain_response_passes_through_with_its_exact_cost(router: str, native: Shop):
    before = native.balance()

    raw = client(router, native.key).responses.with_raw_response.create(
        model=native.model.public_id,
        input=[{"role": "user", "content": HELLO}, REASONING, {"role": "user", "content": "Go on"}],
        include=["reasoning.encrypted_content"],
        tools=[{"type": "web_search"}],
        extra_body={"emulator": {"completion_tokens": 5, "echo": True}},
        extra_headers={"OpenAI-Beta": "responses=experimental"},
    )

    response = raw.parse()
    extra = json.loads(raw.http_response.text, parse_float=Decimal)
    assert (response.id, response.model) == (raw.headers["x-generation-id"], native.model.public_id)
    assert response.output_text == ANSWER5
    # The provider got the client's own body: the reasoning item, `include` and the built-in tool.
    received = extra["emulator_received"]
    assert received["body"]["model"] == "emulator-responses"
    assert received["body"]["input"][1] == REASONING
    assert received["body"]["include"] == ["reasoning.encrypted_content"]
    assert received["body"]["tools"] == [{"type": "web_search"}]
    assert received["headers"]["openai-beta"] == "responses=experimental"
    prompt = emulated_prompt_tokens([{"role": "user", "content": HELLO}, {"role": "user", "content": "Go on"}])
    cost = cost_of(prompt, 5)
    assert (response.usage.input_tokens, response.usage.output_tokens) == (prompt, 5)
    assert extra["usage"]["cost"] == cost
    generation = generation_settled(response.id)
    assert (generation.surface, generation.status) == ("responses", "completed")
    assert generation.upstream_id.startswith("resp_")
    assert_settled_once(generation, cost)
    assert before - native.balance() == cost
    # Stored under our id, read back as it was answered.
    assert client(router, native.key).responses.retrieve(response.id).output_text == ANSWER5


def test_a_stream_is_relayed_and_the_completed_event_carries_the_charged_cost(router: str, native: Shop):
    events = list(
        client(router, native.key).responses.create(
            model=native.model.public_id,
            input=HELLO,
            stream=True,
            include=["reasoning.encrypted_content"],
            extra_body={"emulator": {"completion_tokens": 5}},
        )
    )

    kinds = [e.type for e in events]
    assert (kinds[0], kinds[1], kinds[-1]) == ("response.created", "response.in_progress", "response.completed")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == ANSWER5
    final = events[-1].response
    assert events[0].response.id == final.id
    assert (final.status, final.output_text, final.model) == ("completed", ANSWER5, native.model.public_id)
    cost = cost_of(emulated_prompt_tokens([{"role": "user", "content": HELLO}]), 5)
    assert Decimal(str(final.usage.model_extra["cost"])) == cost
    generation = generation_settled(final.id)
    assert (generation.stream, generation.status) == (True, "completed")
    assert_settled_once(generation, cost)


def test_a_function_tool_round_trip_continues_by_previous_response_id(router: str, native: Shop):
    api = client(router, native.key)
    tools = [
        {
            "type": "function",
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]

    first = api.responses.create(model=native.model.public_id, input="Weather in Oslo?", tools=tools)

    (call,) = first.output
    assert (call.type, call.name, json.loads(call.arguments)) == ("function_call", "weather", {"city": "Moscow"})
    raw = api.responses.with_raw_response.create(
        model=native.model.public_id,
        tools=tools,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        extra_body={"emulator": {"echo": True}},
    )
    answer = raw.parse()
    assert answer.output_text.startswith("The tool returned: sunny")
    assert answer.previous_response_id == first.id
    # Our stored conversation went to the provider as items; our response id did not.
    sent = json.loads(raw.http_response.text)["emulator_received"]["body"]
    assert "previous_response_id" not in sent
    assert [item.get("type") for item in sent["input"]] == ["message", "function_call", "function_call_output"]
    for generation in [generation_settled(first.id), generation_settled(answer.id)]:
        assert generation.cost > 0
        assert_settled_once(generation, generation.cost)


def test_openai_python_chat_completions_are_translated_onto_the_responses_route(router: str, native: Shop):
    """Chat completions on a model whose only route speaks the Responses API: plain, streamed, and a tool round
    trip, each answered as a chat completion and charged once."""
    api = client(router, native.key)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    asked = [{"role": "user", "content": HELLO}]
    prompt = emulated_prompt_tokens(asked)

    plain = api.chat.completions.create(
        model=native.model.public_id, messages=asked, extra_body={"emulator": {"completion_tokens": 5}}
    )
    chunks = list(
        api.chat.completions.create(
            model=native.model.public_id,
            messages=asked,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"emulator": {"completion_tokens": 5}},
        )
    )
    weather = [{"role": "user", "content": "Weather in Oslo?"}]
    first = api.chat.completions.create(model=native.model.public_id, messages=weather, tools=tools)
    (call,) = first.choices[0].message.tool_calls
    answered = api.chat.completions.create(
        model=native.model.public_id,
        tools=tools,
        messages=[
            *weather,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )

    assert (plain.object, plain.model, plain.choices[0].message.content) == (
        "chat.completion",
        native.model.public_id,
        ANSWER5,
    )
    assert (plain.choices[0].finish_reason, plain.usage.prompt_tokens, plain.usage.completion_tokens) == (
        "stop",
        prompt,
        5,
    )
    assert Decimal(str(plain.usage.model_extra["cost"])) == cost_of(prompt, 5)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert Decimal(str(chunks[-1].usage.model_extra["cost"])) == cost_of(prompt, 5)
    assert (first.choices[0].finish_reason, call.function.name) == ("tool_calls", "weather")
    assert json.loads(call.function.arguments) == {"city": "Moscow"}
    assert answered.choices[0].message.content.startswith("The tool returned: sunny")
    native.balance()  # a plain answer is charged right after it is sent: wait until all four are
    for answer_id, streamed in [(plain.id, False), (chunks[0].id, True), (first.id, False), (answered.id, False)]:
        generation = generation_settled(answer_id)
        assert (generation.surface, generation.stream, generation.status) == ("chat", streamed, "completed")
        assert generation.upstream_id.startswith("resp_")  # the route was called in the Responses API
        assert generation.cost > 0
        assert_settled_once(generation, generation.cost)
    assert_settled_once(generation_settled(plain.id), cost_of(prompt, 5))


@pytest.mark.parametrize("fail", ["error_mid_stream", "drop_mid_stream"])
def test_a_native_stream_broken_upstream_ends_with_response_failed_and_is_settled_once(
    router: str, native: Shop, fail: str
):
    response = requests.post(
        f"{router}/responses",
        json={
            "model": native.model.public_id,
            "input": HELLO,
            "stream": True,
            "emulator": {"completion_tokens": 8, "fail": fail},
        },
        headers={"Authorization": f"Bearer {native.key}"},
        timeout=20,
    )

    events = [
        json.loads(frame.split(b"\ndata: ", 1)[1], parse_float=Decimal)
        for frame in response.content.split(b"\n\n")
        if frame.strip()
    ]
    assert (events[0]["type"], events[-1]["type"]) == ("response.created", "response.failed")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    generation = generation_settled(events[0]["response"]["id"])
    assert generation.status == "failed"
    assert generation.cost > 0  # what was delivered is charged, once, and said on the failed event
    assert events[-1]["response"]["usage"]["cost"] == generation.cost
    assert_settled_once(generation, generation.cost)


def test_a_client_that_hangs_up_on_a_native_stream_is_charged_what_the_drained_upstream_reports(
    router: str, native: Shop
):
    url = urlsplit(router)
    raw = json.dumps(
        {
            "model": native.model.public_id,
            "input": HELLO,
            "stream": True,
            "emulator": {"completion_tokens": 30, "chunk_delay_ms": 20},
        }
    ).encode()
    request = (
        f"POST {url.path}/responses HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {native.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    try:
        sock.sendall(request + raw)
        received = b""
        while received.count(b"response.output_text.delta") < 3:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    head = received.split(b"\r\n\r\n", 1)[0].decode()
    generation_id = next(
        line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith("x-generation-id:")
    )

    generation = generation_settled(generation_id)

    prompt = emulated_prompt_tokens([{"role": "user", "content": HELLO}])
    assert (generation.status, generation.usage_source) == ("cancelled", "upstream")
    assert (generation.prompt_tokens, generation.completion_tokens) == (prompt, 30)
    assert_settled_once(generation, cost_of(prompt, 30))
