"""Anthropic's Messages surface (POST /v1/messages): native on `anthropic-messages` routes, translated elsewhere.

A route that speaks Anthropic's API gets the client's body as it is, but for the model name
(completions/upstreams/anthropic_messages.py relays its answer). For any other route the Anthropic
request becomes a chat completion body (then goes the chat surface's way: the route's declared
parameters, its model name); the chat answer comes back as an Anthropic message, and a chat stream as
Anthropic's event sequence. The translation table is the docs page "Messages (Anthropic)"
(docs/content/en/messages.md); each row is tested in tests/completions/test_messages.py (the reasoning rows
in tests/completions/test_stream_events.py).

Money leaves as the chat surface's does (core.exactjson): `usage.cost` is exactly what the ledger charged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from core import exactjson

from ..errors import ApiError, invalid
from . import chat, events
from .base import StreamEnd, Surface, openapi_operation

if TYPE_CHECKING:
    from django.http import HttpRequest

    from completions.settlement import Finished, Started

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
STOP_REASONS["function_call"] = "tool_use"

# Anthropic's error types by our status; 502-504 (no route answered) are Anthropic's 529 overloaded_error.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
}
OVERLOADED = frozenset({502, 503, 504})

# Our mapping of `thinking.budget_tokens` to OpenAI's `reasoning_effort` (documented in the docs page).
EFFORT_BUDGETS = ((4096, "low"), (16384, "medium"))


@dataclass
class MessagesRequest(chat.ChatRequest):
    """A Messages request: the chat request it translates to, plus what the answer needs back."""

    stop_sequences: tuple[str, ...] = ()
    tool_names: frozenset[str] = field(default_factory=frozenset)
    anthropic: dict[str, Any] = field(default_factory=dict)  # the client's body, for native routes
    # Why the body cannot go to an OpenAI-compatible route (a server tool, a document block, ...): only
    # native routes can serve it.
    untranslatable: ApiError | None = None

    @property
    def prompt_tokens_estimate(self) -> int:
        """One token per four bytes of the client's (Anthropic) body, as chat's estimate."""
        return math.ceil(self.raw_size / 4)


def _text_of(content: Any, where: str) -> str:
    """A string, or text blocks joined (a system prompt, a tool result)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(f"'{where}' must be a string or an array of text blocks.", where)
    texts = []
    for j, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise invalid(f"'{where}[{j}]' must be a text block.", f"{where}[{j}]")
        texts.append(block["text"])
    return "\n\n".join(texts)


def _image_part(block: dict, where: str) -> dict:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str):
            return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise invalid(f"'{where}.source' must be a base64 or url image source.", f"{where}.source")


def _tool_result(block: dict, where: str) -> dict:
    if not isinstance(block.get("tool_use_id"), str):
        raise invalid(f"'{where}.tool_use_id' is required.", f"{where}.tool_use_id")
    content = block.get("content", "")
    text = _text_of(content, f"{where}.content") if content else ""
    if block.get("is_error"):
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _user_messages(content: Any, where: str) -> list[dict]:
    """A user turn: its tool results first (as `tool` messages, answering the assistant's calls), then
    its text and images as one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools, parts = [], []
    for j, block in enumerate(content):
        at = f"{where}[{j}]"
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "tool_result":
            tools.append(_tool_result(block, at))
        else:
            raise invalid(f"'{at}.type' {kind!r} is not supported on this route.", f"{at}.type")
    if parts and all(p["type"] == "text" for p in parts):
        return [*tools, {"role": "user", "content": "\n\n".join(p["text"] for p in parts)}]
    return [*tools, {"role": "user", "content": parts}] if parts else tools


def _assistant_message(content: Any, where: str) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts, calls = [], []
    for j, block in enumerate(content):
        at = f"{where}[{j}]"
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise invalid(f"'{at}' needs an 'id' and a 'name'.", at)
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False, separators=(",", ":"))
            calls.append(
                {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # an OpenAI-compatible route cannot take them back
        else:
            raise invalid(f"'{at}.type' {kind!r} is not supported on this route.", f"{at}.type")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _messages(body: dict) -> list[dict]:
    out: list[dict] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": _text_of(system, "system")})
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' is required: a non-empty array of message objects.", "messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            raise invalid(f"'{where}.role' must be 'user', 'assistant' or 'system'.", f"{where}.role")
        content = message.get("content")
        if not isinstance(content, str | list) or (
            isinstance(content, list) and not all(isinstance(b, dict) for b in content)
        ):
            raise invalid(f"'{where}.content' must be a string or an array of content blocks.", f"{where}.content")
        if message["role"] == "system":  # a system turn mid-conversation (Claude Code sends them)
            out.append({"role": "system", "content": _text_of(content, f"{where}.content")})
        elif message["role"] == "user":
            out.extend(_user_messages(content, f"{where}.content"))
        else:
            out.append(_assistant_message(content, f"{where}.content"))
    return out


def _tools(tools: Any) -> list[dict]:
    if not isinstance(tools, list):
        raise invalid("'tools' must be an array.", "tools")
    out = []
    for i, tool in enumerate(tools):
        if (
            not isinstance(tool, dict)
            or tool.get("type") not in (None, "custom")
            or not isinstance(tool.get("name"), str)
        ):
            raise invalid(
                f"'tools[{i}]' must be a custom tool with a 'name' (server tools need a native route).", f"tools[{i}]"
            )
        function: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description") is not None:
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, chat_body: dict) -> None:
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise invalid("'tool_choice.type' must be one of auto, any, tool, none.", "tool_choice")
    kind = choice["type"]
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise invalid("'tool_choice.name' is required with type 'tool'.", "tool_choice.name")
        chat_body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        chat_body["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if choice.get("disable_parallel_tool_use") is True:
        chat_body["parallel_tool_calls"] = False


def _effort(thinking: Any) -> str | None:
    if not isinstance(thinking, dict):
        raise invalid("'thinking' must be an object.", "thinking")
    if thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not chat._is_int(budget) or not 1 <= budget <= chat.MAX_TOKENS_LIMIT:
        limit = chat.MAX_TOKENS_LIMIT
        raise invalid(f"'thinking.budget_tokens' must be an integer between 1 and {limit}.", "thinking.budget_tokens")
    return next((effort for limit, effort in EFFORT_BUDGETS if budget <= limit), "high")


def chat_body_of(body: dict) -> dict[str, Any]:
    """The chat completion body an Anthropic Messages body translates to (see the docs' table)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("'model' is required.", "model")
    max_tokens = body.get("max_tokens")
    if not chat._is_int(max_tokens) or max_tokens < 1:
        raise invalid("'max_tokens' is required: a positive integer.", "max_tokens")
    out: dict[str, Any] = {"model": body["model"], "messages": _messages(body), "max_tokens": max_tokens}
    for name in ("models", "provider"):  # the router's own fields, as on chat
        if name in body:
            out[name] = body[name]
    chat._check_range(body, "temperature", 0, 1)
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid("'stop_sequences' must be an array of strings.", "stop_sequences")
        if stops:
            out["stop"] = stops
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], out)
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise invalid("'metadata' must be an object.", "metadata")
        if isinstance(metadata.get("user_id"), str):
            out["user"] = metadata["user_id"]
    if body.get("thinking") is not None and (effort := _effort(body["thinking"])) is not None:
        out["reasoning_effort"] = effort
    if body.get("stream") is not None:
        out["stream"] = body["stream"]
    return out


def parse_messages_request(raw: bytes) -> MessagesRequest:
    """Validate a Messages body and translate it for OpenAI-compatible routes (`top_k`, `cache_control` and
    Anthropic-only fields drop); native routes get the body itself."""
    body = chat._json_load(raw)
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    untranslatable = None
    try:
        translated = chat_body_of(body)
    except ApiError as error:
        # What a native route could still take: the request goes on, and only translated routes refuse it.
        untranslatable = error
        translated = chat_body_of({**_routing_fields(body), "messages": [{"role": "user", "content": ""}]})
    parsed = chat.parse_chat_request(chat._forward_json(translated))
    values = {f.name: getattr(parsed, f.name) for f in fields(parsed)}
    values["raw_size"] = len(raw)
    stops = tuple(translated.get("stop", ()))
    names = frozenset(t["function"]["name"] for t in translated.get("tools", ()))
    return MessagesRequest(
        **values, stop_sequences=stops, tool_names=names, anthropic=body, untranslatable=untranslatable
    )


def _routing_fields(body: dict) -> dict[str, Any]:
    """What the pipeline reads of a body that only a native route can take."""
    return {name: body[name] for name in ("model", "max_tokens", "models", "provider", "stream") if name in body}


def count_tokens(raw: bytes) -> int:
    """Our estimate of a request's input tokens (count_tokens): one per four bytes of the body."""
    body = chat._json_load(raw)
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    chat_body_of({**body, "max_tokens": 1})  # validated as a create would be; max_tokens is not required here
    return math.ceil(len(raw) / 4)


def upstream_body(request: MessagesRequest, route: Any) -> bytes:
    """The chat completion body an OpenAI-compatible route is sent (a native route gets the client's own)."""
    if request.untranslatable is not None:
        raise request.untranslatable
    return chat.upstream_body(request, route)


# --- The answer -----------------------------------------------------------------------------------------


def usage_out(finished: Finished) -> dict[str, Any]:
    """Anthropic's usage: input tokens neither read from nor written to the cache, the cache writes and
    reads, the output; our exact cost."""
    usage = finished.usage
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cost": finished.cost,
    }


def _input_of(arguments: Any) -> Any:
    try:
        value = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except (ValueError, RecursionError):  # arguments that are not JSON, or nested too deep to read
        return {}
    return value if isinstance(value, dict) else {}


def _stop(choice: dict, request: MessagesRequest) -> tuple[str | None, str | None]:
    """(stop_reason, stop_sequence): a sequence the upstream says it matched (vLLM's `stop_reason`)."""
    reason = choice.get("finish_reason")
    matched = choice.get("stop_reason")
    if reason == "stop" and isinstance(matched, str) and matched in request.stop_sequences:
        return "stop_sequence", matched
    return (STOP_REASONS.get(str(reason), "end_turn") if reason else None), None


def signature_of(part: dict[str, Any]) -> str | None:
    """The signature of a message's (or delta's) reasoning, from OpenRouter's `reasoning_details`."""
    details = part.get("reasoning_details")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and isinstance(detail.get("signature"), str) and detail["signature"]:
            return detail["signature"]
    return None


def plain_answer(body: dict[str, Any], started: Started, finished: Finished) -> bytes:
    """The upstream's chat completion as an Anthropic message, with our id and the exact cost; its
    reasoning as a `thinking` block first."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    thinking = chat.reasoning_of(message)
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": signature_of(message) or ""})
    if isinstance(message.get("content"), str) and message["content"]:
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": _input_of(function.get("arguments")),
            }
        )
    stop_reason, stop_sequence = _stop(choice, started.request)
    answer = {
        "id": started.generation_id,
        "type": "message",
        "role": "assistant",
        "model": started.entry.public_id,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_out(finished),
    }
    return exactjson.dumps_bytes(answer)


def event(name: str, data: dict[str, Any]) -> bytes:
    return events.exact(name, data)


# The events every stream repeats, rendered once (events.py): a block's start, its deltas, its stop.
_TEXT_START = b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,"content_block":{"type":"text","text":""}}\n\n'  # noqa: E501
_TEXT_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%s}}\n\n'  # noqa: E501
_JSON_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":%s}}\n\n'  # noqa: E501
_THINKING_START = b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'  # noqa: E501
_THINKING_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"thinking_delta","thinking":%s}}\n\n'  # noqa: E501
_SIGNATURE_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"signature_delta","signature":%s}}\n\n'  # noqa: E501
_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


class EventWriter:
    """Chat chunks into Anthropic's events; keeps which content block is open across chunks."""

    def __init__(self, started: Started) -> None:
        self.started = started
        self.began = False
        self.index = -1  # the open block's index
        self.open: str | None = None  # "thinking", "text" or a tool call's upstream index ("tool:N")
        self.signature: str | None = None  # the open thinking block's, sent just before its stop

    def _begin(self) -> bytes:
        if self.began:
            return b""
        self.began = True
        message = {
            "id": self.started.generation_id,
            "type": "message",
            "role": "assistant",
            "model": self.started.entry.public_id,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.started.request.prompt_tokens_estimate,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 0,
            },
        }
        return events.named("message_start", events.json_bytes({"type": "message_start", "message": message}))

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        out = b""
        if self.open == "thinking" and self.signature:
            out = _SIGNATURE_DELTA % (self.index, events.json_string(self.signature))
        self.open = self.signature = None
        return out + _BLOCK_STOP % self.index

    def _start(self, kind: str, block: dict) -> bytes:
        out = self._close()
        self.index += 1
        self.open = kind
        if kind == "text":
            return out + _TEXT_START % self.index
        if kind == "thinking":
            return out + _THINKING_START % self.index
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        return out + events.named("content_block_start", events.json_bytes(start))

    def apply(self, data: bytes, chunk: dict) -> bytes:
        out = self._begin() if not self.began else b""
        choices = chunk.get("choices") or ()
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        thinking = chat.reasoning_of(delta)
        if thinking:
            if self.open != "thinking":
                out += self._start("thinking", {})
            out += _THINKING_DELTA % (self.index, events.json_string(thinking))
        if self.open == "thinking" and "reasoning_details" in delta:
            self.signature = signature_of(delta) or self.signature
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.open != "text":
                out += self._start("text", {})
            out += _TEXT_DELTA % (self.index, events.json_string(text))
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            at = call.get("index", 0)
            function = call.get("function") or {}
            if f"tool:{at}" != self.open:
                block = {
                    "type": "tool_use",
                    "id": call.get("id") or "",
                    "name": function.get("name") or "",
                    "input": {},
                }
                out += self._start(f"tool:{at}", block)
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                out += _JSON_DELTA % (self.index, events.json_string(arguments))
        return out


def stream_rewriter(first: dict, started: Started) -> EventWriter:
    return EventWriter(started)


def stream_event(data: bytes) -> bytes:
    return data  # the writer frames its own events (several per chunk, with `event:` lines)


def stream_final(started: Started, end: StreamEnd) -> bytes:
    """The held-back chunk's content, then (settled, not failed) the open block's stop, `message_delta`
    with the stop reason and our usage and exact cost, and `message_stop`."""
    writer = end.rewrite if isinstance(end.rewrite, EventWriter) else EventWriter(started)
    out = writer.apply(end.last, end.last_chunk) if end.last_chunk is not None else writer._begin()
    if end.finished is None or end.error:
        return out  # the error event follows
    choices = (end.last_chunk or {}).get("choices") or [{}]
    stop_reason, stop_sequence = _stop(choices[0] if isinstance(choices[0], dict) else {}, started.request)
    out += writer._close()
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": usage_out(end.finished),
    }
    return out + event("message_delta", delta) + _MESSAGE_STOP


def stream_error(message: str) -> bytes:
    """A failure after the stream began: Anthropic's error event."""
    error = {"type": "api_error", "message": f"Stream interrupted: {message}."}
    return event("error", {"type": "error", "error": error})


def error_body(error: ApiError) -> tuple[int, dict[str, Any]]:
    """An error in Anthropic's shape, {"type": "error", "error": {"type", "message"}}."""
    if error.status in OVERLOADED:
        status, kind = 529, "overloaded_error"
    else:
        status = error.status
        kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return status, {"type": "error", "error": {"type": kind, "message": error.message}}


def authorization(request: HttpRequest) -> str:
    """The key from `x-api-key` (Anthropic's SDKs) or `Authorization: Bearer`."""
    key = request.META.get("HTTP_X_API_KEY")
    return f"Bearer {key}" if key else request.META.get("HTTP_AUTHORIZATION", "")


# Anthropic's error shape, as error_body writes it.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"type": "string", "enum": ["error"]},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
# The body as chat_body_of checks it; Anthropic-only fields such as `top_k` are accepted and dropped.
REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": chat.MAX_TOKENS_LIMIT},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"type": "string", "enum": ["user", "assistant"]},
                    "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
                },
            },
        },
        "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
        "stop_sequences": {"type": "array", "items": {"type": "string"}, "nullable": True},
        "stream": {"type": "boolean", "nullable": True},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"type": "object", "nullable": True},
        "metadata": {"type": "object", "nullable": True},
        "thinking": {"type": "object", "nullable": True},
    },
    "additionalProperties": True,
}
COUNT_TOKENS_REQUEST: dict[str, Any] = {
    **REQUEST_SCHEMA,
    "required": ["model", "messages"],  # max_tokens is not needed to count
}

OPENAPI = openapi_operation(
    request=REQUEST_SCHEMA,
    error_schema=ERROR_SCHEMA,
    operation_id="messages_create",
    summary="Create a message (Anthropic Messages API)",
    description="Anthropic-compatible (`x-api-key` or `Authorization: Bearer`; `anthropic-version` and "
    "`anthropic-beta` are accepted and passed to native routes): passed through to the model's Anthropic "
    "routes, translated onto its OpenAI-compatible ones. `max_tokens` is "
    "required. `usage.cost` is what was charged (USD). With `stream: true` the answer is Anthropic's event "
    "stream; `message_delta` carries `usage.cost`. Errors are in Anthropic's shape.",
    tag="messages",
    answer="The message (or its event stream).",
    streams=True,
    errors=(
        ("400", "invalid_request_error"),
        ("401", "authentication_error"),
        ("402", "billing_error"),
        ("403", "permission_error"),
        ("404", "not_found_error"),
        ("408", "invalid_request_error: the body did not arrive in time"),
        ("413", "request_too_large"),
        ("415", "invalid_request_error: the body is not sent as application/json"),
        ("422", "invalid_request_error: the provider rejected the request"),
        ("429", "rate_limit_error"),
        ("529", "overloaded_error"),
    ),
)
COUNT_TOKENS_OPENAPI = openapi_operation(
    request=COUNT_TOKENS_REQUEST,
    answer_schema={
        "type": "object",
        "required": ["input_tokens"],
        "properties": {"input_tokens": {"type": "integer", "minimum": 0}},
    },
    error_schema=ERROR_SCHEMA,
    operation_id="messages_count_tokens",
    summary="Count a message's input tokens (our estimate)",
    description="The request a create would be, without `max_tokens`: validated the same way, answered with "
    "our estimate of its input tokens (a token per four bytes). Free: nothing is held or charged.",
    tag="messages",
    answer="The estimate.",
    streams=False,
    errors=(
        ("400", "invalid_request_error"),
        ("401", "authentication_error"),
        ("403", "permission_error"),
        ("408", "invalid_request_error: the body did not arrive in time"),
        ("413", "request_too_large"),
        ("415", "invalid_request_error: the body is not sent as application/json"),
    ),
)


SURFACE = Surface(
    name="messages",
    path="messages",
    speaks="openai-chat",
    native="anthropic-messages",
    openapi=OPENAPI,
    parse=parse_messages_request,
    upstream_body=upstream_body,
    plain_answer=plain_answer,
    stream_rewriter=stream_rewriter,
    stream_event=stream_event,
    stream_final=stream_final,
    stream_error=stream_error,
    stream_end=b"",
    stream_keepalive=b'event: ping\ndata: {"type": "ping"}\n\n',
    error_body=error_body,
    authorization=authorization,
)
