"""The emulator's Anthropic Messages API: POST .../v1/messages, plain or streamed, deterministic.

A documented contract (the same `emulator` steering options as chat completions: `completion_tokens`,
`fail`, `chunk_delay_ms`, `delay_ms`, `echo`):

* ``input_tokens`` = 3 + words of the system prompt + Σ (3 + words of each message's text blocks,
  tool results and tool-use inputs); it never exceeds the body's byte length.
* When ``cache_control`` appears anywhere in the body, half of those tokens (rounded down) are reported
  as written to the cache (``cache_creation_input_tokens``), or, with ``emulator.cache_hit: true``, as
  read from it (``cache_read_input_tokens``); ``input_tokens`` is the rest.
* The answer: with tools and no ``tool_result`` in the last turn, one ``tool_use`` block with sample
  arguments for the tool ``tool_choice`` forces (``tool``, or the first for ``any``), else for the first
  tool the last user turn's last text block names as a word (case-insensitive; agents send their tools with
  every turn); otherwise
  ``completion_tokens`` words of the emulator's text (prefixed by what a tool returned), cut at
  ``max_tokens`` (``stop_reason: max_tokens``) or at a word equal to one of ``stop_sequences``
  (``stop_sequence``). With ``thinking.type: enabled`` a thinking block comes first, with a signature.
* ``output_tokens`` = the words of the text and thinking, plus the words of each tool input's JSON.
* A stream is Anthropic's event sequence: ``message_start``, ``ping``, each block's
  ``content_block_start``/``content_block_delta``s/``content_block_stop`` (``text_delta`` one per word,
  ``thinking_delta`` then ``signature_delta``, ``input_json_delta`` in about three fragments),
  ``message_delta`` with the stop reason and usage, ``message_stop``.
* Errors are in Anthropic's shape; ``fail`` takes any 4xx/5xx status (529 is ``overloaded_error``),
  ``error_mid_stream`` (an ``error`` event) and ``drop_mid_stream``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from emulator.core import (
    MAX_DELAY_MS,
    MID_STREAM_FAILS,
    WORDS,
    BadRequest,
    Reply,
    StreamDropped,
    _arguments,
    _fail_mode,
    _fail_status,
    _int,
    _options,
    count_words,
    dumps,
)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
THINKING = "The user wants a short answer, so I will give one."


@dataclass(slots=True)
class Message:
    """A validated Messages request and its precomputed answer."""

    body: dict[str, Any]
    headers: Mapping[str, str | None]
    opts: dict[str, Any]
    fail: str | None
    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    usage: dict[str, int]
    id: str


def error_reply(status: int, message: str | None = None) -> Reply:
    """An error in Anthropic's shape."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {"type": "error", "error": {"type": kind, "message": message or f"Emulated HTTP {status}."}}
    return Reply(status, dumps(body))


def _text(content: Any) -> str:
    """The words a content field holds: a string, text blocks, tool results and tool-use inputs."""
    if isinstance(content, str):
        return content
    out = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            out.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            out.append(_text(block.get("content", "")))
        elif block.get("type") == "tool_use":
            out.append(dumps(block.get("input") or {}).decode())
    return " ".join(out)


def _cached(body: Any) -> bool:
    """Whether `cache_control` appears anywhere in the body."""
    if isinstance(body, dict):
        return "cache_control" in body or any(_cached(v) for v in body.values())
    if isinstance(body, list):
        return any(_cached(v) for v in body)
    return False


def input_usage(body: dict[str, Any], opts: dict[str, Any]) -> dict[str, int]:
    """The input side of usage, per the module docstring."""
    tokens = 3 + count_words(_text(body.get("system")))
    tokens += sum(3 + count_words(_text(m.get("content"))) for m in body["messages"])
    cached = tokens // 2 if _cached(body) else 0
    hit = bool(opts.get("cache_hit"))
    return {
        "input_tokens": tokens - cached,
        "cache_creation_input_tokens": 0 if hit else cached,
        "cache_read_input_tokens": cached if hit else 0,
    }


def _last_user(body: dict[str, Any]) -> dict[str, Any]:
    """The last user turn (a system turn may follow it)."""
    return next((m for m in reversed(body["messages"]) if m.get("role") == "user"), body["messages"][-1])


def _tool_uses(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and isinstance(t.get("name"), str)]
    choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
    last = _last_user(body)
    answered = isinstance(last.get("content"), list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"]
    )
    if not tools or choice.get("type") == "none" or answered:
        return None
    if choice.get("type") == "tool":
        tools = [t for t in tools if t["name"] == choice.get("name")]
        if not tools:
            raise BadRequest(f"tool_choice names unknown tool {choice.get('name')!r}.")
    elif choice.get("type") != "any":
        # Not forced: a tool is called only when the last turn's last text names it (agents send their tools,
        # and reminders naming them, with every turn).
        content = last.get("content")
        texts = (
            [content]
            if isinstance(content, str)
            else [b.get("text") for b in content or () if isinstance(b, dict) and b.get("type") == "text"]
        )
        asked = set(re.findall(r"\w+", str(texts[-1] if texts else "").lower()))
        tools = [t for t in tools if t["name"].lower() in asked]
        if not tools:
            return None
    tool = tools[0]
    return [
        {"type": "tool_use", "id": "toolu_emu_0", "name": tool["name"], "input": _arguments(tool.get("input_schema"))}
    ]


def _answer_text(body: dict[str, Any], opts: dict[str, Any]) -> tuple[str, str, str | None]:
    """The text, its stop reason and the stop sequence it stopped at."""
    wanted = opts["completion_tokens"]
    size = min(wanted, body["max_tokens"])
    last = _last_user(body)
    results = [b for b in last.get("content") or () if isinstance(b, dict) and b.get("type") == "tool_result"]
    prefix = ["The", "tool", "returned:", *_text(results).split()] if results else []
    words = (prefix + [WORDS[i % len(WORDS)] for i in range(size)])[:size]
    stops = body.get("stop_sequences") or ()
    for i, word in enumerate(words):
        if word in stops:
            return " ".join(words[:i]), "stop_sequence", word
    return " ".join(words), "max_tokens" if size < wanted else "end_turn", None


def parse_message(raw: bytes, headers: Mapping[str, str | None], fail_mode: str | None = None) -> Message:
    """Validate a Messages body and precompute its answer; raises BadRequest."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"We could not parse the JSON body of your request: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("messages: a non-empty array of message objects is required.")
    if not isinstance(body.get("model"), str):
        raise BadRequest("model: a string is required.")
    body["max_tokens"] = _int(body.get("max_tokens"), "max_tokens", 1, 10**9)
    opts = _options(body.get("emulator"))
    fail = _fail_mode(fail_mode if fail_mode is not None else opts.get("fail"))
    content: list[dict[str, Any]] = []
    thinking = body.get("thinking") if isinstance(body.get("thinking"), dict) else {}
    if thinking.get("type") == "enabled":
        signature = hashlib.sha256(THINKING.encode()).hexdigest()[:32]
        content.append({"type": "thinking", "thinking": THINKING, "signature": f"emu-sig-{signature}"})
    uses = _tool_uses(body)
    if uses:
        content += uses
        stop_reason, stop_sequence = "tool_use", None
    else:
        text, stop_reason, stop_sequence = _answer_text(body, opts)
        content.append({"type": "text", "text": text})
    output = sum(
        count_words(dumps(b["input"]).decode())
        if b["type"] == "tool_use"
        else count_words(b.get("text") or b.get("thinking"))
        for b in content
    )
    usage = {**input_usage(body, opts), "output_tokens": output}
    message_id = f"msg_emu_{secrets.token_hex(12)}"
    message = Message(body, headers, opts, fail, content, stop_reason, stop_sequence, usage, message_id)
    waited = opts["delay_ms"] + (opts["timeout_ms"] if fail == "timeout" else 0)
    if body.get("stream") is True:
        # Every gap between events: each block's, and message_start, ping, message_delta, message_stop.
        events = sum(1 for block in content for _ in _block_events(0, block)) + 4
        waited += opts["chunk_delay_ms"] * events
    if waited > MAX_DELAY_MS:
        raise BadRequest(f"The emulated delays add up to {waited} ms; at most {MAX_DELAY_MS} are allowed.")
    return message


def _received(message: Message) -> dict[str, Any]:
    """What `emulator.echo` reports back; never a key itself."""
    headers = {name: message.headers.get(name) for name in ("anthropic-version", "anthropic-beta")}
    headers["x_api_key_present"] = bool(message.headers.get("x-api-key"))
    return {"body": message.body, "headers": headers}


def message_body(message: Message) -> dict[str, Any]:
    """The plain (non-streamed) message."""
    out: dict[str, Any] = {
        "id": message.id,
        "type": "message",
        "role": "assistant",
        "model": message.body["model"],
        "content": message.content,
        "stop_reason": message.stop_reason,
        "stop_sequence": message.stop_sequence,
        "usage": message.usage,
    }
    if message.opts.get("echo"):
        out["emulator_received"] = _received(message)
    return out


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps({"type": name, **data}) + b"\n\n"


def _block_events(index: int, block: dict[str, Any]) -> Iterator[bytes]:
    kind = block["type"]
    if kind == "text":
        yield _event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
        for piece in [w if i == 0 else " " + w for i, w in enumerate(block["text"].split())]:
            yield _event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}})
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        yield _event("content_block_start", {"index": index, "content_block": start})
        delta = {"type": "thinking_delta", "thinking": block["thinking"]}
        yield _event("content_block_delta", {"index": index, "delta": delta})
        signed = {"type": "signature_delta", "signature": block["signature"]}
        yield _event("content_block_delta", {"index": index, "delta": signed})
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        yield _event("content_block_start", {"index": index, "content_block": start})
        arguments = dumps(block["input"]).decode()
        step = max(1, math.ceil(len(arguments) / 3))
        for i in range(0, len(arguments), step):
            delta = {"type": "input_json_delta", "partial_json": arguments[i : i + step]}
            yield _event("content_block_delta", {"index": index, "delta": delta})
    yield _event("content_block_stop", {"index": index})


def _events(message: Message) -> Iterator[bytes]:
    start = {**message_body(message), "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**message.usage, "output_tokens": 1}
    yield _event("message_start", {"message": start})
    yield _event("ping", {})
    blocks = [event for i, block in enumerate(message.content) for event in _block_events(i, block)]
    cut = len(blocks) // 2 if message.fail in MID_STREAM_FAILS else None
    yield from blocks[:cut]
    if message.fail == "drop_mid_stream":
        raise StreamDropped
    if message.fail == "error_mid_stream":
        yield _event("error", {"error": {"type": "overloaded_error", "message": "Overloaded (emulated)."}})
        return
    delta = {"stop_reason": message.stop_reason, "stop_sequence": message.stop_sequence}
    yield _event("message_delta", {"delta": delta, "usage": message.usage})
    yield _event("message_stop", {})


def stream_events(message: Message) -> Iterator[bytes | float]:
    """The event stream, with `chunk_delay_ms` gaps as floats between events."""
    gap = message.opts["chunk_delay_ms"] / 1000
    for position, event in enumerate(_events(message)):
        if position and gap:
            yield gap
        yield event


def messages_reply(raw: bytes, headers: Mapping[str, str | None], fail_mode: str | None = None) -> Reply:
    """Full handling of one Messages request body (auth is the adapter's job)."""
    try:
        message = parse_message(raw, headers, fail_mode)
    except BadRequest as exc:
        return error_reply(400, str(exc))
    delay = (message.opts["delay_ms"] + (message.opts["timeout_ms"] if message.fail == "timeout" else 0)) / 1000
    streams = message.body.get("stream") is True
    status = _fail_status(message.fail) or (500 if message.fail in MID_STREAM_FAILS and not streams else 0)
    if status:
        reply = error_reply(status)
        reply.delay = delay
        return reply
    if streams:
        return Reply(200, delay=delay, events=stream_events(message))
    return Reply(200, dumps(message_body(message)), delay=delay)


def auth_error(headers: Mapping[str, str | None], api_key: str | None) -> Reply | None:
    """401 unless `api_key` is unset or sent as `x-api-key` (or `Authorization: Bearer`)."""
    if not api_key:
        return None
    sent = headers.get("x-api-key") or ""
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if not sent and scheme.lower() == "bearer":
        sent = token.strip()
    if secrets.compare_digest(sent.encode(), api_key.encode()):
        return None
    return error_reply(401, "invalid x-api-key")
