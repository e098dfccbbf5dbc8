"""The OpenAI Chat Completions surface (POST /v1/chat/completions): request validation, the body sent
upstream, and the upstream's answer rewritten as ours with the exact cost.

Money leaves this module as JSON numbers written from the Decimal's own digits (core.exactjson, never
through a float), so `usage.cost` is exactly the amount the ledger charged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core import exactjson, fastjson

from ..candidates import PARAMETER_ALIASES
from ..errors import ApiError, invalid
from ..preferences import (
    DEFAULT_PROVIDER,
    MAX_MODELS,
    ROUTER_FIELDS,
    ProviderPreferences,
    Reasoning,
    models_parse,
    provider_parse,
    reasoning_parse,
    router_fields_check,
)
from .base import StreamEnd, Surface, openapi_operation
from .fields import INT64, int_check, number_map_check
from .fields import is_int as _is_int
from .fields import number_check as _check_range

if TYPE_CHECKING:
    from completions.routing import RouteInfo
    from completions.settlement import Finished, Started

# No model writes more; the bound keeps a request's worst case (its hold) a storable amount for a model
# whose catalog entry sets no output cap.
MAX_TOKENS_LIMIT = 2**31 - 1
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass
class ChatRequest:
    """A validated chat completion request: the body as sent, plus what the router needs from it."""

    body: dict[str, Any]
    raw_size: int
    model: str
    stream: bool
    max_tokens: int | None
    n: int
    user: str
    wants_usage: bool
    forward: bytes  # the upstream body but for `model`: see upstream_body()
    models: tuple[str, ...] = ()  # the models to try, in order (`model` first)
    provider: ProviderPreferences = DEFAULT_PROVIDER
    reasoning: Reasoning | None = None
    # What `forward` holds, for the routes that declare the parameters they take (see upstream_body()).
    forward_fields: dict[str, Any] = field(default_factory=dict)
    _forward_by_declared: dict[frozenset[str], bytes] = field(default_factory=dict)

    @property
    def parameters(self) -> frozenset[str]:
        """The request parameters a route may or may not take (all but the ones every route gets)."""
        return frozenset(self.forward_fields) - ALWAYS_FORWARDED

    @property
    def reasoning_exclude(self) -> bool:
        return self.reasoning is not None and self.reasoning.exclude

    @property
    def prompt_tokens_upper_bound(self) -> int:
        """At most this many prompt tokens: a token is at least one byte of the request."""
        return self.raw_size

    @property
    def prompt_tokens_estimate(self) -> int:
        """Our estimate when the upstream does not say: one token per four bytes of the request."""
        return math.ceil(self.raw_size / 4)


def _check_content(content: Any, where: str, *, required: bool) -> None:
    if content is None:
        if required:
            raise invalid(f"'{where}.content' is required.", f"{where}.content")
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid(f"'{where}.content' must be a string or an array of content parts.", f"{where}.content")
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise invalid(f"'{where}.content[{j}]' must be an object with a 'type'.", f"{where}.content[{j}]")


def _check_message(message: Any, i: int) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise invalid(f"'{where}' must be an object with 'role' and 'content'.", where)
    role = message.get("role")
    if role not in ROLES:
        raise invalid(f"'{where}.role' must be one of {', '.join(sorted(ROLES))}.", f"{where}.role")
    if role == "assistant":
        tool_calls = message.get("tool_calls")
        if tool_calls is not None and not isinstance(tool_calls, list):
            raise invalid(f"'{where}.tool_calls' must be an array.", f"{where}.tool_calls")
        _check_content(message.get("content"), where, required=not tool_calls and "function_call" not in message)
        return
    _check_content(message.get("content"), where, required=True)
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise invalid(f"'{where}.tool_call_id' is required for tool messages.", f"{where}.tool_call_id")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _strict_json_load(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8-sig"), parse_constant=_reject_constant)


def _json_load(raw: bytes) -> Any:
    """Strict JSON: UTF-8 text, without the NaN and Infinity that json.loads accepts."""
    try:
        return fastjson.loads(raw, slow=_strict_json_load)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise invalid(f"The request body is not valid JSON: {exc}.")
    except RecursionError:
        raise invalid("The request body is not valid JSON: it is nested too deeply.")


# Every route gets these, whatever parameters it declares.
ALWAYS_FORWARDED = frozenset({"messages", "stream", "stream_options"})


def _forward_fields(body: dict[str, Any], stream: bool, reasoning: Reasoning | None) -> dict[str, Any]:
    """The body as every route gets it, but for `model`: the client's, without the router's own fields
    (`models`, `provider`, ...), with `reasoning` as `reasoning_effort`, and streams asking for usage."""
    rest = {name: value for name, value in body.items() if name != "model" and name not in ROUTER_FIELDS}
    if stream:
        rest["stream_options"] = {**(rest.get("stream_options") or {}), "include_usage": True}
    if reasoning is not None and reasoning.effort is not None and rest.get("reasoning_effort") is None:
        rest["reasoning_effort"] = reasoning.effort  # a `reasoning_effort` the client sent itself wins
    return rest


def _forward_json(rest: dict[str, Any]) -> bytes:
    """`rest` written once, here: a body that json.loads took but json.dumps cannot write back (a lone
    surrogate escape, nesting at the recursion limit) is the client's 400, not a failure after funds are held.
    """
    try:
        return json.dumps(rest, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        raise invalid("The request body is not valid JSON: it holds a lone surrogate (\\uD800-\\uDFFF).")
    except RecursionError:
        raise invalid("The request body is not valid JSON: it is nested too deeply.")


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Validate a chat completion body; unknown fields are kept and forwarded unchanged."""
    body = _json_load(raw)
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    models = models_parse(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' is required: a non-empty array of message objects.", "messages")
    for i, message in enumerate(messages):
        _check_message(message, i)
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise invalid("'stream' must be a boolean.", "stream")
    _check_range(body, "temperature", 0, 2)
    _check_range(body, "top_p", 0, 1)
    _check_range(body, "presence_penalty", -2, 2)
    _check_range(body, "frequency_penalty", -2, 2)
    int_check(body, "seed", *INT64)
    number_map_check(body, "logit_bias", -100, 100)
    max_tokens = None
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None:
            if not _is_int(value) or not 1 <= value <= MAX_TOKENS_LIMIT:
                raise invalid(f"'{name}' must be an integer between 1 and {MAX_TOKENS_LIMIT}.", name)
            max_tokens = value if max_tokens is None else min(max_tokens, value)
    n = body.get("n", 1)
    if n is None:
        n = 1
    if not _is_int(n) or not 1 <= n <= 128:
        raise invalid("'n' must be an integer between 1 and 128.", "n")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise invalid("'stop' must be a string or an array of strings.", "stop")
    for name in ("tools", "functions"):
        if body.get(name) is not None and not isinstance(body[name], list):
            raise invalid(f"'{name}' must be an array.", name)
    for name in ("response_format", "stream_options", "metadata"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise invalid(f"'{name}' must be an object.", name)
    user = body.get("user", "")
    if user is not None and not isinstance(user, str):
        raise invalid("'user' must be a string.", "user")
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    provider = provider_parse(body.get("provider"))
    reasoning = reasoning_parse(body.get("reasoning"))
    router_fields_check(body)
    fields = _forward_fields(body, bool(stream), reasoning)
    return ChatRequest(
        body=body,
        raw_size=len(raw),
        model=models[0],
        stream=bool(stream),
        max_tokens=max_tokens,
        n=n,
        user=(user or "").replace("\x00", "")[:256],  # PostgreSQL text cannot hold NUL
        wants_usage=wants_usage,
        forward=_forward_json(fields),
        models=models,
        provider=provider,
        reasoning=reasoning,
        forward_fields=fields,
    )


def _forward_for(chat: ChatRequest, route: RouteInfo) -> bytes:
    """`forward` cut to the parameters a route declares (as OpenRouter drops what a provider does not take).

    A limit the route declares only under its other name (`max_tokens` / `max_completion_tokens`) is sent
    under that name; `reasoning_effort` goes to a route that declares `reasoning`. Written once per
    declared list and request.
    """
    declared = route.supported_parameters
    assert declared is not None
    cached = chat._forward_by_declared.get(declared)
    if cached is not None:
        return cached
    kept: dict[str, Any] = {}
    for name, value in chat.forward_fields.items():
        if name in ALWAYS_FORWARDED or name in declared:
            kept[name] = value
        elif PARAMETER_ALIASES.get(name) in declared:
            other = PARAMETER_ALIASES[name]
            renamed = other if other in LIMITS else name
            kept.setdefault(renamed, value)  # the client's own `max_completion_tokens` wins over a rename
    forward = _forward_json(kept)
    chat._forward_by_declared[declared] = forward
    return forward


LIMITS = frozenset({"max_tokens", "max_completion_tokens"})


def upstream_body(chat: ChatRequest, route: RouteInfo) -> bytes:
    """The body sent upstream: the client's, with the route's model name and (streams) usage asked for.

    A route that declares its parameters gets only those (and the messages); any other gets `forward`
    as it was written at parse time, unchanged.
    """
    forward = chat.forward if route.supported_parameters is None else _forward_for(chat, route)
    return b'{"model":' + json.dumps(route.upstream_model, ensure_ascii=False).encode() + b"," + forward[1:]


def usage_out(started: Started, finished: Finished, upstream_usage: Any) -> dict[str, Any]:
    """The `usage` object the client sees: our charged counts, with the exact cost (Decimals)."""
    usage = dict(upstream_usage) if isinstance(upstream_usage, dict) and finished.usage_source == "upstream" else {}
    usage.pop("cost", None)
    usage.pop("cost_details", None)
    usage["prompt_tokens"] = finished.usage.prompt_tokens
    usage["completion_tokens"] = finished.usage.completion_tokens
    usage["total_tokens"] = finished.usage.prompt_tokens + finished.usage.completion_tokens
    usage["cost"] = finished.cost
    price = started.price
    if finished.breakdown is not None and (
        price.cached_prompt is not None or price.cache_write_prompt is not None or price.request
    ):
        b = finished.breakdown
        usage["cost_details"] = {
            "prompt": b.prompt,
            "cached_prompt": b.cached_prompt,
            "cache_write_prompt": b.cache_write_prompt,
            "completion": b.completion,
            "request": b.request,
        }
    return usage


def _with_usage(obj: dict[str, Any], usage: dict[str, Any]) -> bytes:
    return exactjson.dumps_bytes({**obj, "usage": usage})


def reasoning_out(choices: Any, key: str, exclude: bool) -> None:
    """Reasoning text as OpenRouter writes it: `reasoning` (a provider's `reasoning_content` renamed),
    or none at all when the request asked `reasoning.exclude`. `key` is `message` or `delta`."""
    for choice in choices if isinstance(choices, list) else ():
        part = choice.get(key) if isinstance(choice, dict) else None
        if not isinstance(part, dict):
            continue
        if exclude:
            for name in REASONING_FIELDS:
                part.pop(name, None)
        elif "reasoning_content" in part:
            text = part.pop("reasoning_content")
            if part.get("reasoning") is None:
                part["reasoning"] = text


REASONING_FIELDS = ("reasoning", "reasoning_content", "reasoning_details")


def reasoning_of(part: dict[str, Any]) -> str:
    """A chat message's (or delta's) reasoning text: OpenRouter's `reasoning`, else a provider's
    `reasoning_content` (DeepSeek, vLLM); "" when it has none. Messages and Responses translate it."""
    text = part.get("reasoning") or part.get("reasoning_content")
    return text if isinstance(text, str) else ""


def _has_reasoning(data: bytes, exclude: bool) -> bool:
    """Whether an upstream payload needs reasoning_out(): cheaper than parsing, and usually false."""
    return b'"reasoning_content"' in data or (exclude and b'"reasoning' in data)


def plain_answer(body: dict[str, Any], started: Started, finished: Finished) -> bytes:
    """The upstream's JSON answer as ours: our generation id and model, our usage with the exact cost."""
    body["id"] = started.generation_id
    body["model"] = started.entry.public_id
    reasoning_out(body.get("choices"), "message", started.request.reasoning_exclude)
    return _with_usage(body, usage_out(started, finished, body.get("usage")))


def sse(data: bytes) -> bytes:
    """One server-sent event carrying `data`."""
    return b"data: " + data + b"\n\n"


_MISSING = object()
_USAGE_NULL_LAST = b',"usage":null}'


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class Rewrite:
    """Turns an upstream chunk into ours: our id and model, and no provider usage on chunks with choices.

    Most chunks are rewritten on their bytes (the upstream's own serialization, found once in its first
    chunk); anything unexpected is re-serialized from the parsed chunk, which is always right.
    """

    def __init__(
        self,
        old: list[tuple[bytes, bytes]],
        gen_id: str,
        model: str,
        wants_usage: bool,
        exclude_reasoning: bool = False,
    ) -> None:
        self.old = old
        self.gen_id = gen_id
        self.model = model
        self.wants_usage = wants_usage
        self.exclude_reasoning = exclude_reasoning

    @classmethod
    def for_first(
        cls, chunk: dict, gen_id: str, model: str, wants_usage: bool, exclude_reasoning: bool = False
    ) -> Rewrite:
        pairs = []
        for key, new in (("id", gen_id), ("model", model)):
            if isinstance(chunk.get(key), str):
                pairs.append(
                    (b'"%s":%s' % (key.encode(), _dumps(chunk[key])), b'"%s":%s' % (key.encode(), _dumps(new)))
                )
        return cls(pairs, gen_id, model, wants_usage, exclude_reasoning)

    def apply_bytes(self, data: bytes) -> bytes | None:
        """`apply` for a chunk the relay did not parse (`chat_chunks.middle_chunk_chars`: no usage object
        on it); None when it must be parsed after all."""
        if len(self.old) != 2 or _has_reasoning(data, self.exclude_reasoning):
            return None
        if data.endswith(_USAGE_NULL_LAST):
            if not self.wants_usage:  # as in `apply`: the top-level object's last member
                data = data[: -len(_USAGE_NULL_LAST)] + b"}"
        elif b'"usage"' in data:
            return None
        (old_id, new_id), (old_model, new_model) = self.old
        if data.count(old_id) != 1 or data.count(old_model) != 1:
            return None
        return data.replace(old_id, new_id, 1).replace(old_model, new_model, 1)

    def apply(self, data: bytes, chunk: dict) -> bytes:
        usage = chunk.get("usage", _MISSING)
        # `usage: null` stays only when the client asked for usage (as OpenAI does); a provider's
        # usage on a chunk with choices never reaches the client (ours comes once, at the end).
        if usage is None and not self.wants_usage and data.endswith(_USAGE_NULL_LAST):
            # We asked the upstream for usage, so it marks every chunk `usage: null`, last (OpenAI does);
            # the client did not ask. Right before the closing brace these bytes can only be the top-level
            # object's last member (a string's quotes would be escaped).
            data, usage = data[: -len(_USAGE_NULL_LAST)] + b"}", _MISSING
        fast = len(self.old) == 2 and (usage is _MISSING or (usage is None and self.wants_usage))
        reasoning = _has_reasoning(data, self.exclude_reasoning)
        if fast and not reasoning and all(data.count(old) == 1 for old, _ in self.old):
            for old, new in self.old:
                data = data.replace(old, new, 1)
            return data
        if reasoning:
            reasoning_out(chunk.get("choices"), "delta", self.exclude_reasoning)
        chunk["id"] = self.gen_id
        chunk["model"] = self.model
        chunk.pop("usage", None)
        if self.wants_usage:
            chunk["usage"] = None
        return _dumps(chunk)


def stream_rewriter(first: dict, started: Started) -> Rewrite:
    return Rewrite.for_first(
        first,
        started.generation_id,
        started.entry.public_id,
        started.request.wants_usage,
        started.request.reasoning_exclude,
    )


def stream_final(started: Started, end: StreamEnd) -> bytes:
    """The stream's last chunks, once it is settled: the answer's end and the exact cost, shaped as OpenAI's.

    - The client asked for usage (`stream_options.include_usage`): the held-back chunk like every other
      (`usage: null`), then the usage chunk with `choices: []` (the upstream's own, or one of ours)
      carrying our usage and cost.
    - It did not: the held-back chunk (the one with the `finish_reason`) carries our usage and cost, so
      that every chunk the client gets has choices. A stream that ended without one (the upstream broke
      off mid-answer) gets one chunk with an empty delta and `finish_reason: null` to carry them.
    - Settling failed: the held-back chunk as it is, without usage; the error event follows.
    """
    last = end.last is not None and end.last_chunk is not None and end.rewrite is not None
    if end.finished is None:
        return sse(end.rewrite.apply(end.last, end.last_chunk)) if last else b""
    ours = {"id": started.generation_id, "model": started.entry.public_id}
    usage = usage_out(started, end.finished, end.usage)
    if started.request.wants_usage:
        held = sse(end.rewrite.apply(end.last, end.last_chunk)) if last else b""
        chunk = end.usage_chunk or {"object": "chat.completion.chunk", "created": end.created, "choices": []}
        return held + sse(_with_usage({**chunk, **ours}, usage))
    if last:
        return sse(_with_usage({**end.last_chunk, **ours}, usage))
    carrier = {
        "id": started.generation_id,
        "object": "chat.completion.chunk",
        "created": end.created,
        "model": started.entry.public_id,
        "choices": [{"index": 0, "delta": {}, "finish_reason": None}],
    }
    return sse(_with_usage(carrier, usage))


def stream_error(message: str) -> bytes:
    """A failure after the stream began: an error event (the status line was sent long ago)."""
    failure = ApiError(502, f"Stream interrupted: {message}.", code="upstream_error")
    return sse(json.dumps(failure.body()).encode())


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _number_schema(low: float, high: float) -> dict[str, Any]:
    return _nullable({"type": "number", "minimum": low, "maximum": high})


_TOKENS = _nullable({"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_LIMIT})
_CONTENT = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
        },
    ],
    "nullable": True,
}
# The body as parse_chat_request checks it; any other field is forwarded as sent.
REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["messages"],
    "anyOf": [{"required": ["model"]}, {"required": ["models"]}],
    "properties": {
        "model": {"type": "string", "minLength": 1, "description": "A model id from GET /v1/models."},
        "models": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "maxItems": MAX_MODELS,
            "description": "Fallback models, tried in order.",
        },
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],  # content may be null only beside tool_calls
                "properties": {
                    "role": {"type": "string", "enum": sorted(ROLES)},
                    "content": _CONTENT,
                    "tool_calls": _nullable({"type": "array", "items": {"type": "object"}}),
                    "tool_call_id": {"type": "string"},
                },
            },
        },
        "stream": _nullable({"type": "boolean"}),
        "stream_options": _nullable({"type": "object"}),
        "max_tokens": _TOKENS,
        "max_completion_tokens": _TOKENS,
        "temperature": _number_schema(0, 2),
        "top_p": _number_schema(0, 1),
        "presence_penalty": _number_schema(-2, 2),
        "frequency_penalty": _number_schema(-2, 2),
        "n": _nullable({"type": "integer", "minimum": 1, "maximum": 128}),
        "seed": _nullable({"type": "integer", "minimum": INT64[0], "maximum": INT64[1]}),
        "logit_bias": _nullable({"type": "object", "additionalProperties": _number_schema(-100, 100)}),
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}], "nullable": True},
        "tools": _nullable({"type": "array", "items": {"type": "object"}}),
        "functions": _nullable({"type": "array", "items": {"type": "object"}}),
        "response_format": _nullable({"type": "object"}),
        "metadata": _nullable({"type": "object"}),
        "user": _nullable({"type": "string"}),
        "provider": _nullable({"type": "object", "description": "Routing preferences (OpenRouter's)."}),
        "reasoning": _nullable({"type": "object", "description": "Reasoning effort and visibility (OpenRouter's)."}),
    },
    "additionalProperties": True,
}


OPENAPI = openapi_operation(
    request=REQUEST_SCHEMA,
    operation_id="chat_completions_create",
    summary="Create a chat completion",
    description="OpenAI-compatible, with OpenRouter's routing fields (`models`, `provider`, `reasoning`), "
    "which are never forwarded. Other parameters are forwarded, except those a route declares it does not "
    "take; `usage.cost` is what was charged (USD). "
    "With `stream: true` the answer is a `text/event-stream` of chunks whose last one carries `usage.cost`.",
    tag="chat",
    answer="The completion (or its event stream).",
    streams=True,
)


SURFACE = Surface(
    name="chat",
    path="chat/completions",
    speaks="openai-chat",
    openapi=OPENAPI,
    parse=parse_chat_request,
    upstream_body=upstream_body,
    plain_answer=plain_answer,
    stream_rewriter=stream_rewriter,
    stream_event=sse,
    stream_final=stream_final,
    stream_error=stream_error,
    stream_end=b"data: [DONE]\n\n",
)
