"""The translation matrix against a live router and the emulator: every surface (chat completions, Messages,
Responses) on every route kind (`openai-chat`, `anthropic-messages`, `openai-responses`), plain and streamed.
Each request answers in its surface's own shape, with the emulator's text or its tool call, `usage.cost`
equal to the one charge the ledger holds for it, and the route called in its own API."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import requests

from emulator.core import WORDS

from .conftest import Shop, assert_settled_once, generation_settled, make_shop

QUESTION = "What is the weather in Oslo?"
ANSWER = " ".join(WORDS[i % len(WORDS)] for i in range(12))  # the emulator's default answer
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
ARGUMENTS = {"city": "Moscow"}  # the emulator's sample arguments for PARAMETERS
# Each kind's emulated model, and how its upstream ids start (the route was called in its own API).
KINDS = {
    "openai-chat": ("emulator-small", "chatcmpl-emu-"),
    "anthropic-messages": ("emulator-claude", "msg_emu_"),
    "openai-responses": ("emulator-responses", "resp_"),
}


@dataclass
class Answer:
    """What a surface's answer said, read in that surface's own shape."""

    generation_id: str
    text: str
    tool: tuple[str, dict] | None  # the tool call's name and arguments
    cost: Decimal


def sse(response: requests.Response) -> list[tuple[str, Any]]:
    """(event name or "", parsed data) of a relayed stream; keep-alive comments and `[DONE]` skipped."""
    out = []
    for block in response.content.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        name = next((line[7:] for line in lines if line.startswith("event: ")), "")
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        if data and data != "[DONE]":
            out.append((name, json.loads(data, parse_float=Decimal)))
    return out


def post(url: str, body: dict, headers: dict) -> requests.Response:
    response = requests.post(url, data=json.dumps(body), headers=headers, timeout=20)
    assert response.status_code == 200, response.text
    return response


# --- Chat completions -------------------------------------------------------------------------------------


def chat(router: str, shop: Shop, stream: bool, tool: bool) -> Answer:
    body: dict[str, Any] = {"model": shop.model.public_id, "messages": [{"role": "user", "content": QUESTION}]}
    if tool:
        body["tools"] = [{"type": "function", "function": {"name": "weather", "parameters": PARAMETERS}}]
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    response = post(f"{router}/chat/completions", body, {"Authorization": f"Bearer {shop.key}"})
    if not stream:
        answer = response.json(parse_float=Decimal)
        assert answer["object"] == "chat.completion"
        message = answer["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        assert answer["choices"][0]["finish_reason"] == ("tool_calls" if tool else "stop")
        call = (calls[0]["function"]["name"], json.loads(calls[0]["function"]["arguments"])) if calls else None
        return Answer(answer["id"], message["content"] or "", call, answer["usage"]["cost"])
    chunks = [data for _, data in sse(response)]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [call for d in deltas for call in d.get("tool_calls") or ()]
    call = (
        (calls[0]["function"]["name"], json.loads("".join(c["function"]["arguments"] for c in calls)))
        if calls
        else None
    )
    text = "".join(d.get("content") or "" for d in deltas)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == ("tool_calls" if tool else "stop")
    return Answer(chunks[0]["id"], text, call, chunks[-1]["usage"]["cost"])


# --- Messages ---------------------------------------------------------------------------------------------


def messages(router: str, shop: Shop, stream: bool, tool: bool) -> Answer:
    body: dict[str, Any] = {
        "model": shop.model.public_id,
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": QUESTION}],
        "stream": stream,
    }
    if tool:
        body["tools"] = [{"name": "weather", "input_schema": PARAMETERS}]
    headers = {"x-api-key": shop.key, "anthropic-version": "2023-06-01"}
    response = post(f"{router.removesuffix('/v1')}/v1/messages", body, headers)
    if not stream:
        answer = response.json(parse_float=Decimal)
        assert (answer["type"], answer["role"]) == ("message", "assistant")
        assert answer["stop_reason"] == ("tool_use" if tool else "end_turn")
        text = "".join(b["text"] for b in answer["content"] if b["type"] == "text")
        uses = [(b["name"], b["input"]) for b in answer["content"] if b["type"] == "tool_use"]
        return Answer(answer["id"], text, uses[0] if uses else None, answer["usage"]["cost"])
    events = [(name, data) for name, data in sse(response) if name != "ping"]
    assert [events[0][0], events[-2][0], events[-1][0]] == ["message_start", "message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events)
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    text = "".join(d.get("text", "") for d in deltas)
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    uses = [block["name"] for block in starts if block["type"] == "tool_use"]
    arguments = "".join(d.get("partial_json", "") for d in deltas)
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == ("tool_use" if tool else "end_turn")
    call = (uses[0], json.loads(arguments)) if uses else None
    return Answer(events[0][1]["message"]["id"], text, call, final["usage"]["cost"])


# --- Responses --------------------------------------------------------------------------------------------


def responses(router: str, shop: Shop, stream: bool, tool: bool) -> Answer:
    body: dict[str, Any] = {"model": shop.model.public_id, "input": QUESTION, "store": False, "stream": stream}
    if tool:
        body["tools"] = [{"type": "function", "name": "weather", "parameters": PARAMETERS}]
    response = post(f"{router}/responses", body, {"Authorization": f"Bearer {shop.key}"})
    if stream:
        events = sse(response)
        assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
        assert (events[0][0], events[-1][0]) == ("response.created", "response.completed")
        answer = events[-1][1]["response"]
        assert "".join(d["delta"] for name, d in events if name == "response.output_text.delta") == (
            "" if tool else ANSWER
        )
    else:
        answer = response.json(parse_float=Decimal)
    assert (answer["object"], answer["status"]) == ("response", "completed")
    text = "".join(part["text"] for item in answer["output"] if item["type"] == "message" for part in item["content"])
    calls = [
        (item["name"], json.loads(item["arguments"])) for item in answer["output"] if item["type"] == "function_call"
    ]
    return Answer(answer["id"], text, calls[0] if calls else None, answer["usage"]["cost"])


SURFACES: dict[str, Callable[[str, Shop, bool, bool], Answer]] = {
    "chat": chat,
    "messages": messages,
    "responses": responses,
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("surface", list(SURFACES))
def test_every_surface_answers_in_its_own_shape_on_every_route_kind_charged_once(
    router: str, transactional_db, emulator_url: str, surface: str, kind: str, stream: bool
):
    upstream_model, upstream_ids = KINDS[kind]
    shop = make_shop(emulator_url, upstream_model=upstream_model, api=kind)

    said = SURFACES[surface](router, shop, stream, False)
    called = SURFACES[surface](router, shop, stream, True)

    assert (said.text, said.tool) == (ANSWER, None)
    assert (called.text, called.tool) == ("", ("weather", ARGUMENTS))
    shop.balance()  # a plain answer is charged right after it is sent: wait until both are
    for answer in (said, called):
        assert answer.cost > 0
        generation = generation_settled(answer.generation_id)
        assert (generation.surface, generation.stream, generation.status) == (surface, stream, "completed")
        assert generation.upstream_id.startswith(upstream_ids)
        assert_settled_once(generation, answer.cost)
