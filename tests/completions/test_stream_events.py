"""The Messages and Responses stream writers, in-process: the events they render from pre-built bytes
(completions/surfaces/events.py) are the compact JSON of the objects they stand for, whatever the text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from billing.money import Usage
from completions.settlement import Finished
from completions.surfaces import messages, responses
from completions.surfaces.base import StreamEnd
from core import exactjson
from tests.completions.test_chat_view import chunk

# Quotes, backslashes, control characters, line separators, non-ASCII, astral characters, a '%'.
AWKWARD = ['"quoted"', "back\\slash", "new\nline\ttab\x00\x1f", "\u2028\u2029", "héllo 日本", "🙂", "100% %d %s"]


def _started(surface: Any, body: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(
        generation_id="gen-1",
        entry=SimpleNamespace(public_id="vendor/model"),
        price=SimpleNamespace(cached_prompt=None, cache_write_prompt=None, request=Decimal(0)),
        request=surface.parse(json.dumps(body).encode()),
        started_at=datetime(2026, 12, 3, tzinfo=UTC),
    )


def _stream(surface: Any, started: SimpleNamespace, deltas: list[dict[str, Any]]) -> bytes:
    """The stream the relay writes for these deltas, the last one finishing the answer."""
    chunks = [chunk({"role": "assistant", "content": ""}), *(chunk(d) for d in deltas)]
    writer = surface.stream_rewriter(chunks[0], started)
    out = b"".join(writer.apply(json.dumps(c).encode(), c) for c in chunks)
    last = chunk({}, finish_reason="stop")
    finished = Finished(cost=Decimal("0.0000126"), usage=Usage(3, 4), usage_source="upstream", breakdown=None)
    end = StreamEnd(
        last=b"", last_chunk=last, rewrite=writer, usage_chunk=None, usage=None, finished=finished, created=0
    )
    return out + surface.stream_final(started, end)


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Each event's name and payload, its payload's bytes checked to be the object's compact dump."""
    out = []
    for block in raw.removesuffix(b"\n\n").split(b"\n\n"):
        name, data = block.split(b"\n")
        payload = json.loads(data.removeprefix(b"data: "), parse_float=Decimal)
        assert data.removeprefix(b"data: ").decode() == exactjson.dumps(payload)
        assert name == b"event: " + payload["type"].encode()
        out.append((payload["type"], payload))
    return out


TOOL_DELTAS = [
    {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
    *({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in AWKWARD),
]


@pytest.mark.parametrize("with_tool", [False, True], ids=["text", "text-then-tool"])
def test_messages_deltas_are_the_compact_dump_of_their_events_whatever_the_text(with_tool: bool):
    started = _started(
        messages.SURFACE, {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}]}
    )
    deltas = [{"content": text} for text in AWKWARD] + (TOOL_DELTAS if with_tool else [])
    events = _events(_stream(messages.SURFACE, started, deltas))

    texts = [e["delta"]["text"] for kind, e in events if kind == "content_block_delta" and e["index"] == 0]
    assert texts == AWKWARD
    assert [kind for kind, _ in events][:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    stops = [e for kind, e in events if kind == "content_block_stop"]
    assert stops == [{"type": "content_block_stop", "index": i} for i in range(2 if with_tool else 1)]
    if with_tool:
        fragments = [e["delta"] for kind, e in events if kind == "content_block_delta" and e["index"] == 1]
        assert fragments == [{"type": "input_json_delta", "partial_json": piece} for piece in AWKWARD]
    assert events[-2][1]["usage"]["cost"] == Decimal("0.0000126")
    assert events[-1] == ("message_stop", {"type": "message_stop"})


@pytest.mark.parametrize("with_tool", [False, True], ids=["text", "text-then-tool"])
def test_responses_deltas_are_the_compact_dump_of_their_events_numbered_in_sequence(with_tool: bool):
    started = _started(responses.SURFACE, {"model": "m", "input": "x", "store": False})
    deltas = [{"content": text} for text in AWKWARD] + (TOOL_DELTAS if with_tool else [])
    events = [e for _, e in _events(_stream(responses.SURFACE, started, deltas))]

    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    text = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [e["delta"] for e in text] == AWKWARD
    assert {(e["item_id"], e["output_index"], e["content_index"]) for e in text} == {("msg_gen-1", 0, 0)}
    assert all(e["logprobs"] == [] for e in text)
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == "".join(AWKWARD)
    arguments = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    if with_tool:
        assert [(e["item_id"], e["output_index"], e["delta"]) for e in arguments] == [
            ("fc_gen-1_0", 1, piece) for piece in AWKWARD
        ]
        call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert call["arguments"] == "".join(AWKWARD)
    else:
        assert arguments == []
    final = events[-1]
    assert final["type"] == "response.completed"
    assert final["response"]["usage"]["cost"] == Decimal("0.0000126")
    assert events[0]["response"] == events[1]["response"]
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]


# --- Reasoning: a chat answer's `reasoning_content` (or `reasoning`) as thinking blocks and reasoning items ---

THOUGHTS = ["First I", " read", ' the "question"']
SIGNED = {"reasoning_details": [{"type": "reasoning.text", "text": "", "signature": "sig-1"}]}


def _thinking_deltas(field: str, signed: bool) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{field: piece} for piece in THOUGHTS]
    if signed:
        deltas.append(SIGNED)
    return [*deltas, {"content": "Hi"}, {"content": " there"}]


def _plain(surface: Any, started: SimpleNamespace, message: dict[str, Any]) -> dict[str, Any]:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}]}
    finished = Finished(cost=Decimal("0.0000126"), usage=Usage(3, 4), usage_source="upstream", breakdown=None)
    return json.loads(surface.plain_answer(body, started, finished), parse_float=Decimal)


def _messages_started() -> SimpleNamespace:
    return _started(messages.SURFACE, {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}]})


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_messages_streams_reasoning_as_a_thinking_block_before_the_text(field: str, signed: bool):
    events = _events(_stream(messages.SURFACE, _messages_started(), _thinking_deltas(field, signed)))

    blocks = [(kind, e) for kind, e in events if kind.startswith("content_block")]
    assert blocks[0][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert [e["delta"] for _, e in blocks[1:4]] == [{"type": "thinking_delta", "thinking": t} for t in THOUGHTS]
    rest = [e for _, e in blocks[4:]]
    if signed:
        assert rest[0] == {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "sig-1"},
        }
        rest = rest[1:]
    assert rest[0] == {"type": "content_block_stop", "index": 0}
    assert rest[1]["content_block"] == {"type": "text", "text": ""}
    assert [e["delta"]["text"] for e in rest[2:4]] == ["Hi", " there"]
    assert rest[4] == {"type": "content_block_stop", "index": 1}


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_messages_answers_reasoning_as_a_thinking_block_first(field: str):
    answer = _plain(messages.SURFACE, _messages_started(), {"content": "Hi", field: "First I read"})

    assert answer["content"] == [
        {"type": "thinking", "thinking": "First I read", "signature": ""},
        {"type": "text", "text": "Hi"},
    ]


def test_messages_answers_the_reasoning_signature_on_its_thinking_block():
    message = {"content": "Hi", "reasoning": "First I read", **SIGNED}

    answer = _plain(messages.SURFACE, _messages_started(), message)

    assert answer["content"][0] == {"type": "thinking", "thinking": "First I read", "signature": "sig-1"}


def test_messages_without_reasoning_have_no_thinking_block():
    answer = _plain(messages.SURFACE, _messages_started(), {"content": "Hi", "reasoning_content": None})

    assert answer["content"] == [{"type": "text", "text": "Hi"}]


def _responses_started() -> SimpleNamespace:
    return _started(responses.SURFACE, {"model": "m", "input": "x", "store": False})


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_responses_streams_reasoning_as_a_reasoning_item_with_its_summary(field: str):
    events = [e for _, e in _events(_stream(responses.SURFACE, _responses_started(), _thinking_deltas(field, False)))]

    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[2:10] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        *["response.reasoning_summary_text.delta"] * 3,
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    where = {"item_id": "rs_gen-1", "output_index": 0, "summary_index": 0}
    assert events[2]["item"] == {"id": "rs_gen-1", "type": "reasoning", "summary": []}
    assert events[3] == {
        "type": "response.reasoning_summary_part.added",
        **where,
        "part": {"type": "summary_text", "text": ""},
        "sequence_number": 3,
    }
    assert [e["delta"] for e in events[4:7]] == THOUGHTS
    assert all({k: e[k] for k in where} == where for e in events[4:9])
    whole = "".join(THOUGHTS)
    assert events[7]["text"] == whole
    assert events[8]["part"] == {"type": "summary_text", "text": whole}
    item = {"id": "rs_gen-1", "type": "reasoning", "summary": [{"type": "summary_text", "text": whole}]}
    assert events[9]["item"] == item
    assert events[10]["item"]["id"] == "msg_gen-1" and events[10]["output_index"] == 1
    final = events[-1]["response"]
    assert [o["type"] for o in final["output"]] == ["reasoning", "message"]
    assert final["output"][0] == item


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_responses_answers_reasoning_as_a_reasoning_item_first(field: str):
    answer = _plain(responses.SURFACE, _responses_started(), {"content": "Hi", field: "First I read"})

    assert answer["output"][0] == {
        "id": "rs_gen-1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "First I read"}],
    }
    assert [o["type"] for o in answer["output"]] == ["reasoning", "message"]
