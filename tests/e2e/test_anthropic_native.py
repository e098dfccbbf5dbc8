"""Anthropic routes (`api: anthropic-messages`) against a live router and the emulator's Messages API: the
official Anthropic SDK passed through natively (plain, stream with thinking signatures, a tool round trip,
prompt caching priced, its exception classes), openai-python translated onto the same route, and every
ending of a native stream settled exactly once."""

from __future__ import annotations

import json
import socket
import struct
from decimal import Decimal
from urllib.parse import urlsplit

import anthropic
import openai
import pytest
import requests

from emulator.core import WORDS

from .conftest import Shop, assert_settled_once, generation_settled, make_shop

HELLO = [{"role": "user", "content": "Hello there"}]
PER_MILLION = Decimal(1_000_000)


@pytest.fixture
def claude(transactional_db, emulator_url) -> Shop:
    """A model whose only route speaks Anthropic's API (the emulator's /v1/messages), with cache prices."""
    return make_shop(
        emulator_url,
        prompt="3.00",
        completion="15.00",
        cached_prompt="0.30",
        cache_write_prompt="3.75",
        upstream_model="emulator-claude",
        api="anthropic-messages",
    )


def cost(prompt: int, completion: int, read: int = 0, written: int = 0) -> Decimal:
    return (
        Decimal(prompt - read - written) * Decimal("3.00")
        + Decimal(read) * Decimal("0.30")
        + Decimal(written) * Decimal("3.75")
        + Decimal(completion) * Decimal("15.00")
    ) / PER_MILLION


def client(router: str, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=router.removesuffix("/v1"), api_key=key, max_retries=0, timeout=20)


def emulator_text(words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(words))


def test_a_plain_message_passes_through_with_its_exact_cost(router: str, claude: Shop):
    before = claude.balance()

    raw = client(router, claude.key).messages.with_raw_response.create(
        model=claude.model.public_id,
        max_tokens=100,
        messages=HELLO,
        metadata={"user_id": "u-1"},
        extra_body={"emulator": {"completion_tokens": 6, "echo": True}},
        extra_headers={"anthropic-beta": "context-management-2025-06-27"},
    )

    message = raw.parse()
    extra = json.loads(raw.http_response.text, parse_float=Decimal)
    assert (message.id, message.model) == (raw.headers["x-generation-id"], claude.model.public_id)
    assert message.content[0].text == emulator_text(6)
    # The provider got the client's own body (our model name) and the client's Anthropic headers.
    received = extra["emulator_received"]
    assert received["body"]["metadata"] == {"user_id": "u-1"}
    assert received["body"]["model"] == "emulator-claude"
    assert received["headers"]["anthropic-beta"] == "context-management-2025-06-27"
    assert received["headers"]["anthropic-version"] == raw.http_request.headers["anthropic-version"]
    prompt = 3 + 3 + 2  # the emulator's count: 3 + (3 + words) per message
    assert (message.usage.input_tokens, message.usage.output_tokens) == (prompt, 6)
    assert extra["usage"]["cost"] == cost(prompt, 6)
    assert before - claude.balance() == cost(prompt, 6)
    assert_settled_once(generation_settled(message.id), cost(prompt, 6))


def test_prompt_caching_is_reported_and_priced_at_the_cache_read_and_write_prices(router: str, claude: Shop):
    system = [{"type": "text", "text": "You are terse and exact always", "cache_control": {"type": "ephemeral"}}]
    api = client(router, claude.key)
    kwargs = {"model": claude.model.public_id, "max_tokens": 50, "system": system, "messages": HELLO}

    written = api.messages.create(**kwargs, extra_body={"emulator": {"completion_tokens": 3}})
    read = api.messages.create(**kwargs, extra_body={"emulator": {"completion_tokens": 3, "cache_hit": True}})

    prompt = 3 + 6 + (3 + 2)  # 3 + the system's words + the message
    half = prompt // 2
    assert (written.usage.cache_creation_input_tokens, written.usage.cache_read_input_tokens) == (half, 0)
    assert (read.usage.cache_creation_input_tokens, read.usage.cache_read_input_tokens) == (0, half)
    assert written.usage.input_tokens == read.usage.input_tokens == prompt - half
    assert_settled_once(generation_settled(written.id), cost(prompt, 3, written=half))
    assert_settled_once(generation_settled(read.id), cost(prompt, 3, read=half))
    generation = generation_settled(written.id)
    assert (generation.prompt_tokens, generation.cache_write_tokens, generation.cached_tokens) == (prompt, half, 0)


def test_a_stream_keeps_thinking_and_its_signature_and_ends_with_the_cost(router: str, claude: Shop):
    with client(router, claude.key).messages.stream(
        model=claude.model.public_id,
        max_tokens=2000,
        messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body={"emulator": {"completion_tokens": 5}},
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    signed = [
        e.delta.signature for e in events if e.type == "content_block_delta" and e.delta.type == "signature_delta"
    ]
    (delta,) = [e for e in events if e.type == "message_delta"]
    thinking, answer = final.content
    assert signed == [thinking.signature]
    assert thinking.type == "thinking" and thinking.signature.startswith("emu-sig-") and thinking.thinking
    assert text == answer.text == emulator_text(5)
    completion = 5 + len(thinking.thinking.split())
    assert final.usage.output_tokens == completion
    assert Decimal(str(delta.usage.model_extra["cost"])) == cost(8, completion)
    assert_settled_once(generation_settled(final.id), cost(8, completion))


def test_a_tool_round_trip_on_a_native_route(router: str, claude: Shop):
    api = client(router, claude.key)
    tools = [
        {
            "name": "weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
    question = [{"role": "user", "content": "Weather in Oslo?"}]

    with api.messages.stream(model=claude.model.public_id, max_tokens=100, messages=question, tools=tools) as stream:
        first = stream.get_final_message()
    (call,) = first.content
    assert (first.stop_reason, call.type, call.name, call.input) == (
        "tool_use",
        "tool_use",
        "weather",
        {"city": "Moscow"},
    )
    answer = api.messages.create(
        model=claude.model.public_id,
        max_tokens=100,
        tools=tools,
        messages=[
            *question,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
        ],
    )
    assert answer.stop_reason == "end_turn" and "sunny" in answer.content[0].text
    for generation_id in (answer.id, first.id):  # the plain answer is charged just after it was sent
        generation = generation_settled(generation_id)
        assert generation.cost > 0
        assert_settled_once(generation, generation.cost)


@pytest.mark.parametrize(
    ("fail", "exception", "status", "kind"),
    [
        ("400", anthropic.BadRequestError, 400, "invalid_request_error"),
        ("529", anthropic.OverloadedError, 529, "overloaded_error"),
        ("500", anthropic.OverloadedError, 529, "overloaded_error"),
    ],
)
def test_provider_failures_raise_the_sdks_exception_classes_and_charge_nothing(
    router, emulator_url, transactional_db, fail, exception, status, kind
):
    shop = make_shop(emulator_url, upstream_model="emulator-claude", api="anthropic-messages")
    before = shop.balance()

    with pytest.raises(exception) as exc:
        client(router, shop.key).messages.create(
            model=shop.model.public_id, max_tokens=10, messages=HELLO, extra_body={"emulator": {"fail": fail}}
        )

    assert (exc.value.status_code, exc.value.body["error"]["type"]) == (status, kind)
    assert shop.balance() == before


def test_openai_python_is_translated_onto_the_anthropic_route(router: str, claude: Shop):
    api = openai.OpenAI(base_url=router, api_key=claude.key, max_retries=0, timeout=20)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]

    plain = api.chat.completions.create(model=claude.model.public_id, messages=HELLO)
    chunks = list(
        api.chat.completions.create(
            model=claude.model.public_id,
            messages=[
                {"role": "user", "content": "What is the weather in Oslo?"}
            ],  # the emulator calls a tool it names
            tools=tools,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    # The emulator's default answer: its `emulator` steering field is ours, not translated.
    assert plain.choices[0].message.content == emulator_text(12)
    assert (plain.choices[0].finish_reason, plain.usage.prompt_tokens, plain.usage.completion_tokens) == ("stop", 8, 12)
    assert_settled_once(generation_settled(plain.id), cost(8, 12))
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
    assert calls[0].function.name == "weather"
    assert json.loads("".join(c.function.arguments or "" for c in calls)) == {"city": "Moscow"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    usage = chunks[-1].usage
    assert Decimal(str(usage.model_extra["cost"])) == cost(usage.prompt_tokens, usage.completion_tokens)
    assert_settled_once(generation_settled(chunks[0].id), cost(usage.prompt_tokens, usage.completion_tokens))


@pytest.mark.parametrize("fail", ["error_mid_stream", "drop_mid_stream"])
def test_a_native_stream_broken_upstream_is_settled_once(router: str, claude: Shop, fail: str):
    events = _raw_events(router, claude, fail)

    assert events[0][0] == "message_start" and events[-1][0] == "error"
    generation = generation_settled(events[0][1]["message"]["id"])
    assert generation.status == "failed"
    # The prompt (message_start's usage) and what was delivered are charged, once.
    assert_settled_once(generation, generation.cost)
    assert generation.cost > 0


def _raw_events(router: str, shop: Shop, fail: str) -> list[tuple[str, dict]]:
    """The events of a stream as Claude Code asks for it (`?beta=true`), read with plain `requests`."""
    response = requests.post(
        f"{router}/messages?beta=true",
        json={
            "model": shop.model.public_id,
            "max_tokens": 100,
            "messages": HELLO,
            "stream": True,
            "emulator": {"completion_tokens": 8, "fail": fail},
        },
        headers={"x-api-key": shop.key, "anthropic-version": "2023-06-01"},
        timeout=20,
    )
    frames = [f for f in response.content.split(b"\n\n") if f.strip()]
    out = []
    for frame in frames:
        name, data = frame.split(b"\n", 1)
        out.append((name.removeprefix(b"event: ").decode(), json.loads(data.removeprefix(b"data: "))))
    return out


def test_a_client_that_hangs_up_on_a_native_stream_is_charged_what_the_drained_upstream_reports(
    router: str, claude: Shop
):
    url = urlsplit(router)
    raw = json.dumps(
        {
            "model": claude.model.public_id,
            "max_tokens": 100,
            "messages": HELLO,
            "stream": True,
            "emulator": {"completion_tokens": 30, "chunk_delay_ms": 20},
        }
    ).encode()
    request = (
        f"POST {url.path}/messages?beta=true HTTP/1.1\r\nHost: {url.netloc}\r\nx-api-key: {claude.key}\r\n"
        f"anthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    try:
        sock.sendall(request + raw)
        received = b""
        while received.count(b"content_block_delta") < 3:
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

    assert (generation.status, generation.usage_source) == ("cancelled", "upstream")
    assert (generation.prompt_tokens, generation.completion_tokens) == (8, 30)
    assert_settled_once(generation, cost(8, 30))
