"""The `anthropic-messages` upstream kind: Anthropic, or any gateway speaking its Messages API (POST /messages).

Two ways a request reaches it:

- natively, from the Messages surface: the client's body goes as it is but for `model` (and our own
  `models`/`provider`), so `cache_control`, thinking blocks with their signatures, `metadata` and
  `context_management` reach the provider; `anthropic-version` and `anthropic-beta` are passed on. The
  answer comes back as Anthropic sent it, with our id, model name and exact cost in its usage; a stream
  is relayed event by event, only `message_start` rewritten and the closing `message_delta` held back
  until the cost is known (`Passthrough`);
- translated, from a surface that speaks Chat Completions: the chat body becomes a Messages body
  (`messages_body_of`), and the answer a chat completion (`chat_answer_of`) or chat chunks (`chat_events`).

The translation tables are the docs page "Messages (Anthropic)"; each row is tested in
tests/completions/test_anthropic_upstream.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from core import exactjson

from ..chat_chunks import translated_chunk
from ..surfaces.messages import usage_out
from .base import Passthrough, PlainRead, Upstream
from .event_shapes import EventShape, checked_shape, plain_chars
from .openai_chat import completion_chars
from .sse import data_frames, frame_batches, frame_data

if TYPE_CHECKING:
    import urllib3
    from django.http import HttpRequest

    from completions.routing import RouteInfo
    from completions.settlement import Finished, Started

VERSION = "2023-06-01"
# The answer's length when a chat request names none: Anthropic requires `max_tokens`.
DEFAULT_MAX_TOKENS = 4096
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}
TOOL_CHOICES = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
# OpenAI's `reasoning_effort` as Anthropic's `thinking.budget_tokens` (the Messages surface maps back).
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}


def auth(api_key: str) -> dict[str, str]:
    """Anthropic's way to send the provider key, with the API version it is spoken in."""
    return {"x-api-key": api_key, "anthropic-version": VERSION}


# --- Chat Completions -> Messages ----------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else ()
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict) and p.get("type") == "text")


def _image(part: dict) -> dict[str, Any]:
    url = (part.get("image_url") or {}).get("url", "") if isinstance(part.get("image_url"), dict) else ""
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            blocks.append(_image(part))
    return blocks


def _assistant_blocks(message: dict) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _text(message.get("content"))
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {} if isinstance(call, dict) else {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": arguments if isinstance(arguments, dict) else {},
            }
        )
    return blocks


def _turns(messages: list[dict]) -> tuple[list[str], list[dict[str, Any]]]:
    """System texts, and the turns: tool results become a user turn's `tool_result` blocks, and turns of
    the same role in a row merge (Anthropic alternates roles)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
            continue
        if role == "tool":
            role, blocks = (
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id", ""),
                        "content": _text(message.get("content")),
                    }
                ],
            )
        elif role == "assistant":
            blocks = _assistant_blocks(message)
        else:
            role, blocks = "user", _user_blocks(message.get("content"))
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if isinstance(choice, str):
        out = dict(TOOL_CHOICES.get(choice, {"type": "auto"}))
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name", "")}
    elif parallel is False:
        out = {"type": "auto"}
    else:
        return None
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def messages_body_of(chat: dict[str, Any]) -> dict[str, Any]:
    """The Messages body a chat completion body translates to (see the docs' table)."""
    system, turns = _turns(chat.get("messages") or [])
    max_tokens = chat.get("max_completion_tokens") or chat.get("max_tokens") or DEFAULT_MAX_TOKENS
    out: dict[str, Any] = {"model": chat.get("model"), "messages": turns, "max_tokens": max_tokens}
    if system:
        out["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p", "stream"):
        if chat.get(name) is not None:
            out[name] = chat[name]
    stop = chat.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = [
        t["function"] for t in chat.get("tools") or () if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if tools:
        out["tools"] = [
            {
                "name": f.get("name", ""),
                **({"description": f["description"]} if f.get("description") else {}),
                "input_schema": f.get("parameters") or {"type": "object", "properties": {}},
            }
            for f in tools
        ]
        choice = _tool_choice(chat.get("tool_choice"), chat.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if isinstance(chat.get("user"), str) and chat["user"]:
        out["metadata"] = {"user_id": chat["user"]}
    effort = chat.get("reasoning_effort")
    if effort in THINKING_BUDGETS:
        out["thinking"] = {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}
    return out


def translate(body: bytes) -> bytes:
    return json.dumps(messages_body_of(json.loads(body)), ensure_ascii=False, separators=(",", ":")).encode()


# --- Messages -> Chat Completions ----------------------------------------------------------------------


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """Anthropic's usage in Chat Completions' terms: the prompt counts its cache reads and writes too."""
    if not isinstance(usage, dict):
        return None
    counts = {}
    for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        value = usage.get(name) or 0
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return {"prompt_tokens": None, "completion_tokens": None}  # settlement then estimates
        counts[name] = value
    read, written = counts["cache_read_input_tokens"], counts["cache_creation_input_tokens"]
    prompt = counts["input_tokens"] + read + written
    return {
        "prompt_tokens": prompt,
        "completion_tokens": counts["output_tokens"],
        "total_tokens": prompt + counts["output_tokens"],
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
    }


def _arguments(value: Any) -> str:
    return json.dumps(value if isinstance(value, dict) else {}, ensure_ascii=False, separators=(",", ":"))


def chat_answer_of(message: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic message as a chat completion (see the docs' table)."""
    texts, thinking, calls = [], [], []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "thinking":
            thinking.append(block.get("thinking", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": _arguments(block.get("input"))},
                }
            )
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if thinking:
        reply["reasoning_content"] = "".join(thinking)
    if calls:
        reply["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": reply,
        "finish_reason": FINISH_REASONS.get(message.get("stop_reason") or "", "stop"),
    }
    answer: dict[str, Any] = {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "model": message.get("model", ""),
        "choices": [choice],
    }
    usage = chat_usage(message.get("usage"))
    if usage is not None:
        answer["usage"] = usage
    return answer


def chat_events(response: urllib3.BaseHTTPResponse, quiet_s: float | None = None) -> Iterator[bytes]:
    """An Anthropic event stream as chat chunk payloads (then `[DONE]`), for the relay's translated path;
    b"" each time the provider was silent for `quiet_s` seconds."""
    head: dict[str, Any] = {"id": "", "object": "chat.completion.chunk", "model": ""}
    usage: dict[str, Any] = {}
    tools: dict[int, int] = {}  # content block index -> tool call index

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return translated_chunk(head, delta, finish)

    for data in data_frames(response, quiet_s):
        if not data:
            yield b""
            continue
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            head["id"], head["model"] = message.get("id", ""), message.get("model", "")
            usage.update(message.get("usage") or {})
            yield chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                at = tools.setdefault(data.get("index", 0), len(tools))
                call = {"index": at, "id": block.get("id", ""), "type": "function"}
                yield chunk({"tool_calls": [{**call, "function": {"name": block.get("name", ""), "arguments": ""}}]})
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                yield chunk({"content": delta.get("text", "")})
            elif delta.get("type") == "thinking_delta":
                yield chunk({"reasoning_content": delta.get("thinking", "")})
            elif delta.get("type") == "input_json_delta" and data.get("index", 0) in tools:
                call = {"index": tools[data.get("index", 0)], "function": {"arguments": delta.get("partial_json", "")}}
                yield chunk({"tool_calls": [call]})
        elif kind == "message_delta":
            usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            reason = (data.get("delta") or {}).get("stop_reason")
            yield chunk({}, FINISH_REASONS.get(reason or "", "stop"))
        elif kind == "message_stop":
            yield json.dumps({**head, "choices": [], "usage": chat_usage(usage)}).encode()
            yield b"[DONE]"
            return
        elif kind == "error":
            if usage:  # what was reported so far is what settles the broken stream
                yield json.dumps({**head, "choices": [], "usage": chat_usage(usage)}).encode()
            error = data.get("error") or {}
            yield json.dumps({"error": {"message": error.get("message", ""), "type": error.get("type", "")}}).encode()
            return


def answer_ok(body: dict) -> bool:
    """Whether a plain answer is an Anthropic message the relay can settle."""
    return body.get("type") == "message" and isinstance(body.get("content"), list)


# --- Native: the Messages surface on an Anthropic route ------------------------------------------------

# Our own request fields, which the provider must not see.
OURS = ("models", "provider")
FORWARDED_HEADERS = (("HTTP_ANTHROPIC_VERSION", "anthropic-version"), ("HTTP_ANTHROPIC_BETA", "anthropic-beta"))


def native_body(request: Any, route: RouteInfo) -> bytes:
    """The client's Messages body as it came, with the route's model name and without our own fields."""
    body = {name: value for name, value in request.anthropic.items() if name not in OURS}
    body["model"] = route.upstream_model
    if isinstance(body.get("messages"), list) and any(_unsigned(message) for message in body["messages"]):
        body["messages"] = [_signed_only(message) for message in body["messages"]]
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _unsigned_block(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "thinking" and not block.get("signature")


def _unsigned(message: Any) -> bool:
    """An assistant turn holding a thinking block no provider signed: one we wrote on a translated route."""
    content = message.get("content") if isinstance(message, dict) and message.get("role") == "assistant" else None
    return isinstance(content, list) and any(_unsigned_block(block) for block in content)


def _signed_only(message: Any) -> Any:
    """The turn without its unsigned thinking blocks. Anthropic refuses a thinking block whose signature it
    cannot verify, and a conversation may move from a translated route to a native one between turns (a
    fallback, or the operator adding a route); the thought itself is only context."""
    if not _unsigned(message):
        return message
    return {**message, "content": [block for block in message["content"] if not _unsigned_block(block)]}


def native_headers(request: HttpRequest) -> dict[str, str]:
    """The client's `anthropic-version` and `anthropic-beta`, passed on as they are."""
    return {name: request.META[key] for key, name in FORWARDED_HEADERS if request.META.get(key)}


def _generated(block: Any) -> int:
    """Characters a content block (or a block's delta) generated."""
    if not isinstance(block, dict):
        return 0
    total = 0
    for name in ("text", "thinking", "partial_json"):
        if isinstance(block.get(name), str):
            total += len(block[name])
    if block.get("type") == "tool_use":
        total += len(block.get("name") or "") + len(_arguments(block.get("input")))
    return total


def native_read(body: dict) -> PlainRead:
    return PlainRead(
        usage=chat_usage(body.get("usage")),
        completion_chars=sum(_generated(block) for block in body.get("content") or ()),
        finish_reason=str(body.get("stop_reason") or ""),
        upstream_id=str(body.get("id") or ""),
    )


def _usage_with_cost(upstream: Any, finished: Finished) -> dict[str, Any]:
    """The provider's usage object, its counts replaced by what we charged for, with our exact cost."""
    usage = dict(upstream) if isinstance(upstream, dict) and finished.usage_source == "upstream" else {}
    usage.pop("cost", None)
    return {**usage, **usage_out(finished)}


def native_answer(body: dict, started: Started, finished: Finished) -> bytes:
    """The provider's message as it came, with our generation id, our model name and the exact cost."""
    answer = {**body, "id": started.generation_id, "model": started.entry.public_id}
    answer["usage"] = _usage_with_cost(body.get("usage"), finished)
    return exactjson.dumps_bytes(answer)


# The deltas read as bytes once a shape is learned (completions/upstreams/event_shapes.py): the key of each
# kind's counted text. Others (`input_json_delta`, whose JSON is full of escaped quotes; signatures) are parsed.
_COUNTED_KEY = {"text_delta": b'"text":"', "thinking_delta": b'"thinking":"'}
_SHAPE_LEARNS = 4


def _frame(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + exactjson.dumps_bytes(data) + b"\n\n"


class NativeEvents:
    """One native stream: relays each event as it came but `message_start` (our id and model name),
    and holds back `message_delta` and `message_stop` until the stream is settled."""

    def __init__(self, started: Started) -> None:
        self.started = started
        self.raw_usage: dict[str, Any] = {}
        self.usage: dict[str, Any] | None = None
        self.finish_reason = ""
        self.upstream_id = ""
        self.error = ""
        self.done = False
        self.held: dict[str, Any] | None = None
        # The fast path: a text (or thinking) delta with the bytes of the last one around its text, read as bytes.
        self.shape: EventShape | None = None
        self.learns = 0  # shapes learned since one was last of use: a stream whose deltas all differ stops

    def _count(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.raw_usage.update({k: v for k, v in usage.items() if v is not None})
            self.usage = chat_usage(self.raw_usage)

    def feed(self, frame: bytes) -> tuple[bytes, int]:
        return self.fast(frame) or self._parsed(frame)

    def fast(self, frame: bytes) -> tuple[bytes, int] | None:
        shape = self.shape
        if shape is not None:
            values = shape.match(frame)
            if values is not None:
                self.learns = 0
                return frame + b"\n\n", plain_chars(values[0])
        return None

    def in_middle(self) -> bool:
        return self.shape is not None and not self.learns and self.held is None and not self.done and not self.error

    def _parsed(self, frame: bytes) -> tuple[bytes, int]:
        data = frame_data(frame)
        kind = data.get("type") if data is not None else None
        if kind == "content_block_delta":
            delta = data.get("delta")
            key = _COUNTED_KEY.get(delta.get("type")) if isinstance(delta, dict) else None
            if key is not None and self.learns < _SHAPE_LEARNS:
                self.learns += 1
                self.shape = checked_shape("anthropic-messages", frame, (key,), self._agrees) or self.shape
            return frame + b"\n\n", _generated(delta)
        if kind == "content_block_start":
            return frame + b"\n\n", _generated(data.get("content_block"))
        if kind == "message_start":
            message = data.get("message") if isinstance(data.get("message"), dict) else {}
            self.upstream_id = str(message.get("id") or "")
            self._count(message.get("usage"))
            ours = {**message, "id": self.started.generation_id, "model": self.started.entry.public_id}
            return _frame("message_start", {**data, "message": ours}), 0
        if kind == "message_delta":
            self._count(data.get("usage"))
            self.finish_reason = str((data.get("delta") or {}).get("stop_reason") or "")
            self.held = data
            return b"", 0
        if kind == "message_stop":
            self.done = True
            return b"", 0
        if kind == "error":
            error = data.get("error") if isinstance(data.get("error"), dict) else {}
            self.error = f"the upstream reported an error mid-stream ({error.get('type') or 'unknown'})"
            return b"", 0
        return frame + b"\n\n", 0  # ping, and whatever else Anthropic adds

    def _agrees(self, frame: bytes, values: list[bytes]) -> bool:
        """Whether the long way relays `frame` as it came, counting the characters of its text, `values[0]`."""
        probe = NativeEvents(self.started)
        probe.learns = _SHAPE_LEARNS
        return probe._parsed(frame) == (frame + b"\n\n", plain_chars(values[0]))

    def final(self, finished: Finished | None, error: str = "") -> bytes:
        if finished is None or error:
            return b""  # not settled, or failed: the error event follows
        delta = self.held or {"type": "message_delta", "delta": {"stop_reason": None, "stop_sequence": None}}
        delta = {**delta, "usage": _usage_with_cost(self.raw_usage, finished)}
        return _frame("message_delta", delta) + _frame("message_stop", {"type": "message_stop"})


PASSTHROUGH = Passthrough(
    body=native_body,
    headers=native_headers,
    read=native_read,
    answer=native_answer,
    events=frame_batches,
    stream=NativeEvents,
    pumped=True,
)

UPSTREAM = Upstream(
    kind="anthropic-messages",
    endpoint="/messages",
    auth=auth,
    events=chat_events,
    completion_chars=completion_chars,
    answer_ok=answer_ok,
    accepts=frozenset({"openai-chat"}),
    translate=translate,
    plain=chat_answer_of,
    passthrough=PASSTHROUGH,
)
