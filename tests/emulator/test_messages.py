"""The emulator's Anthropic Messages API: the documented token rule, cache usage, tools, thinking, the full
event sequence, Anthropic's error shape and key header, through the standalone WSGI app and Django's adapter."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from django.test import Client

from emulator import wsgi
from emulator.core import WORDS
from emulator.messages import messages_reply
from tests.emulator.test_emulator import _start_wsgiref
from tests.emulator.test_routing import routed  # noqa: F401 (fixture)

HI = [{"role": "user", "content": "say hi"}]
WEATHER = {
    "name": "weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def answer(status: int = 200, headers: dict | None = None, **body: Any) -> dict[str, Any]:
    body.setdefault("model", "emulator-claude")
    body.setdefault("max_tokens", 100)
    body.setdefault("messages", HI)
    reply = messages_reply(json.dumps(body).encode(), headers or {})
    assert reply.status == status, reply.body
    return json.loads(reply.body)


def events(**body: Any) -> list[tuple[str, dict]]:
    body = {"model": "emulator-claude", "max_tokens": 100, "messages": HI, "stream": True, **body}
    reply = messages_reply(json.dumps(body).encode(), {})
    raw = b"".join(e for e in reply.events if isinstance(e, bytes))
    out = []
    for frame in raw.decode().strip().split("\n\n"):
        name, data = frame.split("\n")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_a_plain_message_has_the_documented_text_and_usage() -> None:
    body = answer(system="Be brief please", emulator={"completion_tokens": 5})
    assert (body["type"], body["role"], body["model"], body["stop_reason"]) == (
        "message",
        "assistant",
        "emulator-claude",
        "end_turn",
    )
    assert body["content"] == [{"type": "text", "text": " ".join(WORDS[:5])}]
    # 3 + the system's 3 words + (3 + 2 words of the message)
    assert body["usage"] == {
        "input_tokens": 11,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 5,
    }


def test_cache_control_reports_half_the_input_written_or_with_cache_hit_read() -> None:
    system = [{"type": "text", "text": "Be brief please", "cache_control": {"type": "ephemeral"}}]
    written = answer(system=system)["usage"]
    read = answer(system=system, emulator={"cache_hit": True})["usage"]
    assert (written["input_tokens"], written["cache_creation_input_tokens"], written["cache_read_input_tokens"]) == (
        6,
        5,
        0,
    )
    assert (read["input_tokens"], read["cache_creation_input_tokens"], read["cache_read_input_tokens"]) == (6, 0, 5)


def test_max_tokens_and_stop_sequences_cut_the_text() -> None:
    assert answer(max_tokens=3)["stop_reason"] == "max_tokens"
    stopped = answer(stop_sequences=[WORDS[3]])
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", WORDS[3])
    assert stopped["content"][0]["text"] == " ".join(WORDS[:3])


def test_a_tool_is_called_when_forced_or_named_and_its_result_is_answered() -> None:
    assert answer(tools=[WEATHER])["content"][0]["type"] == "text"  # agents send tools every turn
    named = answer(tools=[WEATHER], messages=[{"role": "user", "content": "What is the weather?"}])
    forced = answer(tools=[WEATHER], tool_choice={"type": "any"})
    for body in (named, forced):
        assert body["stop_reason"] == "tool_use"
        assert body["content"] == [
            {"type": "tool_use", "id": "toolu_emu_0", "name": "weather", "input": {"city": "Moscow"}}
        ]
    result = [{"type": "tool_result", "tool_use_id": "toolu_emu_0", "content": "sunny"}]
    answered = answer(
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[*HI, {"role": "assistant", "content": forced["content"]}, {"role": "user", "content": result}],
    )
    assert answered["content"][0]["text"].startswith("The tool returned: sunny")


def test_thinking_comes_first_with_a_signature() -> None:
    thinking, text = answer(thinking={"type": "enabled", "budget_tokens": 1024})["content"]
    assert thinking["type"] == "thinking" and thinking["signature"].startswith("emu-sig-") and thinking["thinking"]
    assert text["type"] == "text"


def test_a_stream_is_anthropics_full_event_sequence() -> None:
    got = events(thinking={"type": "enabled", "budget_tokens": 1024}, emulator={"completion_tokens": 2})
    assert [name for name, _ in got] == [
        "message_start",
        "ping",
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
    assert [d["delta"]["type"] for n, d in got if n == "content_block_delta"] == [
        "thinking_delta",
        "signature_delta",
        "text_delta",
        "text_delta",
    ]
    assert "".join(d["delta"].get("text", "") for n, d in got if n == "content_block_delta") == " ".join(WORDS[:2])
    assert got[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert got[-2][1]["usage"]["output_tokens"] == 2 + len(got[3][1]["delta"]["thinking"].split())


def test_a_streamed_tool_call_comes_in_input_json_deltas() -> None:
    got = events(tools=[WEATHER], tool_choice={"type": "tool", "name": "weather"})
    assert got[2][1]["content_block"] == {"type": "tool_use", "id": "toolu_emu_0", "name": "weather", "input": {}}
    assert "".join(d["delta"]["partial_json"] for n, d in got if n == "content_block_delta") == '{"city":"Moscow"}'


@pytest.mark.parametrize(
    ("fail", "kind"), [("400", "invalid_request_error"), ("529", "overloaded_error"), ("500", "api_error")]
)
def test_failures_are_in_anthropics_shape(fail: str, kind: str) -> None:
    body = answer(int(fail), emulator={"fail": fail})
    assert body == {"type": "error", "error": {"type": kind, "message": f"Emulated HTTP {fail}."}}


def test_an_error_mid_stream_is_an_error_event() -> None:
    got = events(emulator={"fail": "error_mid_stream"})
    assert got[-1][0] == "error" and "message_stop" not in [name for name, _ in got]


def test_the_standalone_app_serves_messages_under_any_prefix_and_takes_the_key_in_x_api_key() -> None:
    base, server = _start_wsgiref(wsgi.make_app(api_key="emu-key"))
    try:
        body = {"model": "emulator-claude", "max_tokens": 10, "messages": HI}
        assert requests.post(f"{base}/any/prefix/v1/messages", json=body, timeout=5).status_code == 401
        ok = requests.post(f"{base}/any/prefix/v1/messages", json=body, headers={"x-api-key": "emu-key"}, timeout=5)
        assert ok.status_code == 200 and ok.json()["type"] == "message"
        failed = requests.post(f"{base}/fail/529/v1/messages", json=body, headers={"x-api-key": "emu-key"}, timeout=5)
        assert (failed.status_code, failed.json()["error"]["type"]) == (529, "overloaded_error")
    finally:
        server.shutdown()


def test_the_django_adapter_serves_messages_and_echoes_the_anthropic_headers(routed, settings) -> None:  # noqa: F811
    routed(DEBUG=True, EMULATOR_ENABLED=True, EMULATOR_API_KEY="")
    body = {"model": "emulator-claude", "max_tokens": 10, "messages": HI, "emulator": {"echo": True}}
    response = Client().post(
        "/emulator/v1/messages",
        json.dumps(body),
        content_type="application/json",
        HTTP_ANTHROPIC_BETA="b1",
        HTTP_ANTHROPIC_VERSION="2023-06-01",
    )
    assert response.status_code == 200
    assert response.json()["emulator_received"]["headers"] == {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "b1",
        "x_api_key_present": False,
    }
