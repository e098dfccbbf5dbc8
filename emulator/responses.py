"""The emulator's Responses API: POST .../v1/responses answered natively, plain or as typed events.

The request is read as the chat endpoint would read its chat equivalent (``input`` and ``instructions`` as
messages, function tools, ``tool_choice``, ``max_output_tokens`` as ``max_tokens``, ``text.format`` as
``response_format``, the ``emulator`` steering options), so the answer is the same deterministic one
(emulator/core.py): the same words, the same function calls with sample arguments, the same token counts
(``input_tokens`` = the chat ``prompt_tokens``, ``output_tokens`` = the answer's words). Then it is written
as a Responses ``response`` object, or as its event stream (``response.created`` … ``response.completed``,
each event with its ``sequence_number``). ``n`` is always 1. With ``emulator.echo`` the response object carries
``emulator_received``: the Responses body as it came (reasoning items, ``include``, built-in tools: the
emulator ignores them, a native route's request keeps them). Fail modes work as on chat; mid-stream,
``drop_mid_stream`` cuts the connection and ``error_mid_stream`` sends an ``error`` event.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

from emulator.core import (
    _PIECES,
    MID_STREAM_FAILS,
    BadRequest,
    Call,
    Reply,
    StreamDropped,
    _fail_status,
    dumps,
    error_reply,
    parse_chat,
    usage_body,
)

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else ()
    return " ".join(p.get("text") for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat request a Responses body stands for; raises BadRequest."""
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise BadRequest("Missing required parameter: 'input'.", "input")
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest("Every input item must be an object.", "input")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": ROLES.get(item.get("role"), "user"), "content": _text(item.get("content"))})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": _text(item.get("output"))})
    if not messages:
        raise BadRequest("'input' holds no message.", "input")
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages, "stream": body.get("stream") is True}
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
    if tools:
        out["tools"] = [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}} for t in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    for name, value in (
        ("tool_choice", choice),
        ("parallel_tool_calls", body.get("parallel_tool_calls")),
        ("max_tokens", body.get("max_output_tokens")),
        ("emulator", body.get("emulator")),
    ):
        if value is not None:
            out[name] = value
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": fmt.get("name"), "schema": fmt.get("schema")},
        }
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    return out


def usage(call: Call) -> dict[str, Any] | None:
    chat = usage_body(call)
    if chat is None:
        return None
    cached = (chat.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {
        "input_tokens": chat["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": chat["completion_tokens"],
        "output_tokens_details": {
            "reasoning_tokens": (chat.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
        },
        "total_tokens": chat["total_tokens"],
    }


def _items(call: Call, rid: str) -> list[dict[str, Any]]:
    status = "incomplete" if call.answer.finish_reason == "length" else "completed"
    if call.answer.tool_calls:
        return [
            {
                "id": f"fc_{rid}_{i}",
                "type": "function_call",
                "status": "completed",
                "call_id": c["id"],
                "name": c["function"]["name"],
                "arguments": c["function"]["arguments"],
            }
            for i, c in enumerate(call.answer.tool_calls)
        ]
    text = {"type": "output_text", "text": call.answer.content or "", "annotations": [], "logprobs": []}
    return [{"id": f"msg_{rid}", "type": "message", "status": status, "role": "assistant", "content": [text]}]


def response_body(call: Call, body: dict[str, Any], rid: str, status: str, output: list, with_usage: bool) -> dict:
    """The `response` object."""
    incomplete = status == "incomplete"
    return {
        "id": f"resp_{rid}",
        "object": "response",
        "created_at": call.created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": call.model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store") is not False,
        "temperature": body.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "usage": usage(call) if with_usage else None,
        "metadata": body.get("metadata") or {},
        **({"emulator_received": received(call, body)} if call.opts.get("echo") else {}),
    }


def received(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """What `emulator.echo` reports back: the Responses body as it came; never the Authorization value."""
    headers = {
        "openai-beta": call.headers.get("openai-beta"),
        "authorization_present": bool(call.headers.get("authorization")),
    }
    return {"body": body, "headers": headers}


def _final_status(call: Call) -> str:
    return "incomplete" if call.answer.finish_reason == "length" and not call.answer.tool_calls else "completed"


def stream_events(call: Call, body: dict[str, Any], rid: str) -> Iterator[bytes | float]:
    """The typed events of the answer, `chunk_delay_ms` apart, or the requested mid-stream failure."""
    gap = call.opts["chunk_delay_ms"] / 1000
    sequence = iter(range(10**9))
    events = list(_events(call, body, rid))
    cut = len(events) // 2 if call.fail in MID_STREAM_FAILS else len(events)
    for position, (kind, data) in enumerate(events[:cut]):
        if position and gap:
            yield gap
        yield _event(kind, data, next(sequence))
        if call.opts["pause_ms"] and position == call.opts["pause_after"]:
            yield call.opts["pause_ms"] / 1000
    if call.fail == "drop_mid_stream":
        raise StreamDropped
    if call.fail == "error_mid_stream":
        yield _event("error", {"code": "server_error", "message": "upstream failure", "param": None}, next(sequence))


def _event(kind: str, data: dict[str, Any], number: int) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + dumps({"type": kind, **data, "sequence_number": number}) + b"\n\n"


def _events(call: Call, body: dict[str, Any], rid: str) -> Iterator[tuple[str, dict[str, Any]]]:
    started = response_body(call, body, rid, "in_progress", [], False)
    yield "response.created", {"response": started}
    yield "response.in_progress", {"response": started}
    items = _items(call, rid)
    for index, item in enumerate(items):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            yield (
                "response.output_item.added",
                {"output_index": index, "item": {**item, "status": "in_progress", "content": []}},
            )
            part = {**item["content"][0], "text": ""}
            yield "response.content_part.added", {**where, "content_index": 0, "part": part}
            text = item["content"][0]["text"]
            for piece in _PIECES.findall(text):
                yield "response.output_text.delta", {**where, "content_index": 0, "delta": piece, "logprobs": []}
            yield "response.output_text.done", {**where, "content_index": 0, "text": text, "logprobs": []}
            yield "response.content_part.done", {**where, "content_index": 0, "part": item["content"][0]}
        else:
            yield (
                "response.output_item.added",
                {"output_index": index, "item": {**item, "status": "in_progress", "arguments": ""}},
            )
            arguments = item["arguments"]
            step = max(1, -(-len(arguments) // 3))
            for i in range(0, len(arguments), step):
                yield "response.function_call_arguments.delta", {**where, "delta": arguments[i : i + step]}
            yield "response.function_call_arguments.done", {**where, "name": item["name"], "arguments": arguments}
        yield "response.output_item.done", {"output_index": index, "item": item}
    status = _final_status(call)
    final = response_body(call, body, rid, status, items, True)
    yield ("response.incomplete" if status == "incomplete" else "response.completed"), {"response": final}


def responses_reply(raw: bytes, headers: Mapping[str, str | None], fail_mode: str | None = None) -> Reply:
    """Full handling of one Responses request body (auth is the adapter's job)."""
    try:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"We could not parse the JSON body of your request: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        call = parse_chat(dumps({**chat_body(body), "n": 1}), headers, fail_mode)
    except BadRequest as exc:
        return error_reply(400, str(exc), param=exc.param)
    delay = (call.opts["delay_ms"] + (call.opts["timeout_ms"] if call.fail == "timeout" else 0)) / 1000
    streams = body.get("stream") is True
    status = _fail_status(call.fail) or (500 if call.fail in MID_STREAM_FAILS and not streams else 0)
    if status:
        return error_reply(status, delay=delay)
    rid = secrets.token_hex(12)
    if streams:
        return Reply(200, delay=delay, events=stream_events(call, body, rid))
    answer = response_body(call, body, rid, _final_status(call), _items(call, rid), True)
    return Reply(200, dumps(answer), delay=delay)
