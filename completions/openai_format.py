"""The OpenAI wire format, in one place: request validation, error bodies, response rewriting.

Money leaves this module as JSON numbers written from the Decimal's own digits (never through a
float), so `usage.cost` is exactly the amount the ledger charged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.http import HttpResponse

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_COST_SLOT = "\x00usage\x00"


class ApiError(Exception):
    """An error the API returns in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    TYPES = {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "insufficient_funds",
        403: "permission_error",
        404: "not_found_error",
        405: "invalid_request_error",
        413: "invalid_request_error",
        429: "rate_limit_error",
        500: "server_error",
    }

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return self.TYPES.get(self.status, "upstream_error" if self.status >= 500 else "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def error_response(error: ApiError) -> HttpResponse:
    """Render an ApiError as a JSON response with its headers."""
    response = HttpResponse(json.dumps(error.body()), status=error.status, content_type="application/json")
    for name, value in error.headers.items():
        response[name] = value
    return response


def invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, code="invalid_request", param=param)


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

    @property
    def prompt_tokens_upper_bound(self) -> int:
        """At most this many prompt tokens: a token is at least one byte of the request."""
        return self.raw_size

    @property
    def prompt_tokens_estimate(self) -> int:
        """Our estimate when the upstream does not say: one token per four bytes of the request."""
        return math.ceil(self.raw_size / 4)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_range(body: dict, name: str, low: float, high: float) -> None:
    if name in body and body[name] is not None:
        value = body[name]
        if not _is_number(value) or not low <= value <= high:
            raise invalid(f"'{name}' must be a number between {low:g} and {high:g}.", name)


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


def _json_load(raw: bytes) -> Any:
    """Strict JSON: UTF-8 text, without the NaN and Infinity that json.loads accepts."""
    try:
        return json.loads(raw.decode("utf-8-sig"), parse_constant=_reject_constant)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise invalid(f"The request body is not valid JSON: {exc}.")
    except RecursionError:
        raise invalid("The request body is not valid JSON: it is nested too deeply.")


def _forward_json(body: dict[str, Any], stream: bool) -> bytes:
    """The body as every route gets it, but for `model`: unchanged, except that streams ask for usage.

    Written once, here: a body that json.loads took but json.dumps cannot write back (a lone surrogate
    escape, nesting at the recursion limit) is the client's 400, not a failure after funds are held.
    """
    rest = {name: value for name, value in body.items() if name != "model"}
    if stream:
        rest["stream_options"] = {**(rest.get("stream_options") or {}), "include_usage": True}
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
    model = body.get("model")
    if not isinstance(model, str) or not model.strip() or not model.isprintable():
        raise invalid("'model' is required: a model id from GET /v1/models.", "model")
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
    max_tokens = None
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None:
            if not _is_int(value) or value < 1:
                raise invalid(f"'{name}' must be a positive integer.", name)
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
    for name in ("response_format", "stream_options", "metadata", "logit_bias"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise invalid(f"'{name}' must be an object.", name)
    user = body.get("user", "")
    if user is not None and not isinstance(user, str):
        raise invalid("'user' must be a string.", "user")
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return ChatRequest(
        body=body,
        raw_size=len(raw),
        model=model,
        stream=bool(stream),
        max_tokens=max_tokens,
        n=n,
        user=(user or "").replace("\x00", "")[:256],  # PostgreSQL text cannot hold NUL
        wants_usage=wants_usage,
        forward=_forward_json(body, bool(stream)),
    )


def upstream_body(chat: ChatRequest, upstream_model: str) -> bytes:
    """The body sent upstream: the client's, with the upstream model name and (streams) usage asked for."""
    return b'{"model":' + json.dumps(upstream_model, ensure_ascii=False).encode() + b"," + chat.forward[1:]


def decimal_text(amount: Decimal) -> str:
    """A Decimal as a plain JSON number: 0.0000066, never 6.6E-6 or a rounded float."""
    text = format(amount.normalize(), "f")
    return "0" if text in ("-0", "") else text


def usage_json(usage: dict[str, Any], cost: Decimal, cost_details: dict[str, Decimal] | None) -> str:
    """The `usage` object with `cost` (and a breakdown) as exact numbers."""
    plain = {k: v for k, v in usage.items() if k not in ("cost", "cost_details")}
    text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
    extra = f'"cost":{decimal_text(cost)}'
    if cost_details:
        parts = ",".join(f'"{k}":{decimal_text(v)}' for k, v in cost_details.items())
        extra += f',"cost_details":{{{parts}}}'
    return text[:-1] + ("," if plain else "") + extra + "}"


def dumps_with_usage(obj: dict[str, Any], usage: str | None) -> bytes:
    """Serialize a response object whose `usage` is given as ready JSON text."""
    if usage is None:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    obj = {**obj, "usage": _COST_SLOT}
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace(json.dumps(_COST_SLOT), usage, 1).encode()


def sse(data: bytes) -> bytes:
    """One server-sent event carrying `data`."""
    return b"data: " + data + b"\n\n"
