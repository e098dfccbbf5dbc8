"""The steering knobs are bounded: a request cannot make the emulator wait or write without end."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator import core

USER = [{"role": "user", "content": "Hello there, emulator!"}]


def _reply(**body: Any) -> core.Reply:
    return core.chat_reply(json.dumps({"messages": USER, **body}).encode(), {})


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"emulator": {"delay_ms": 60_001}}, "emulator.delay_ms", "between 0 and 60000"),
        ({"emulator": {"chunk_delay_ms": 60_001}}, "emulator.chunk_delay_ms", "between 0 and 60000"),
        ({"emulator": {"pause_ms": 60_001}}, "emulator.pause_ms", "between 0 and 60000"),
        ({"emulator": {"timeout_ms": 60_001}}, "emulator.timeout_ms", "between 0 and 60000"),
        ({"emulator": {"completion_tokens": 32_001}}, "emulator.completion_tokens", "between 0 and 32000"),
        ({"emulator": {"cached_tokens": 32_001}}, "emulator.cached_tokens", "between 0 and 32000"),
        ({"n": 9}, "n", "between 1 and 8"),
        ({"emulator": {"delay_ms": 40_000, "fail": "timeout", "timeout_ms": 30_000}}, "emulator", "70000 ms"),
        ({"stream": True, "emulator": {"completion_tokens": 100, "chunk_delay_ms": 1_000}}, "emulator", "103000 ms"),
    ],
)
def test_a_knob_out_of_bounds_is_refused_with_400(body: dict[str, Any], param: str, message: str) -> None:
    reply = _reply(**body)
    error = json.loads(reply.body)["error"]
    assert reply.status == 400 and reply.events is None and reply.delay == 0
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert message in error["message"]


def test_the_bounds_themselves_are_accepted() -> None:
    assert _reply(emulator={"delay_ms": 60_000}).delay == 60.0
    big = json.loads(_reply(n=8, emulator={"completion_tokens": 32_000, "cached_tokens": 32_000}).body)
    assert len(big["choices"]) == 8 and big["usage"]["completion_tokens"] == 8 * 32_000
    paced = _reply(stream=True, emulator={"completion_tokens": 4, "chunk_delay_ms": 7_500, "delay_ms": 6_000})
    assert paced.status == 200 and paced.delay == 6.0  # 6 s + 7.5 s x 7 chunk gaps = 58.5 s


@pytest.mark.parametrize(
    ("knobs", "param"),
    [
        ({"usage_cost": 10**400}, "emulator.usage_cost"),  # float() of it raises OverflowError
        ({"delay_ms": 10**400}, "emulator.delay_ms"),
        ({"completion_tokens": -(10**400)}, "emulator.completion_tokens"),
    ],
)
def test_a_knob_of_hundreds_of_digits_is_a_400_not_a_crash(knobs: dict[str, Any], param: str) -> None:
    reply = _reply(emulator=knobs)
    assert (reply.status, json.loads(reply.body)["error"]["param"]) == (400, param)
