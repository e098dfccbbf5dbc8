"""Pure-Python emulator core: turns a chat-completions request body into an OpenAI-shaped Reply.

Token counting (a documented, deterministic contract):

* ``words(text)`` = number of whitespace-separated words, i.e. ``len(text.split())``.
* ``prompt_tokens = 3 + sum(3 + words(message) for message in messages)`` where ``words(message)``
  counts the message's text content (a string, or the ``text`` of each text part of a list) plus
  every ``tool_calls[].function.arguments`` string.
* ``completion_tokens = n * (words(content) + sum(words(arguments) for each tool call) + reasoning)``.
  Plain text is ``emulator.completion_tokens`` words (default 12) of a fixed word list, one token per
  word; JSON content is serialized compactly, so ``{"answer":"..."}`` holding k words is k tokens.
* ``reasoning`` is ``emulator.reasoning_tokens`` words of a fixed reasoning text (default 8 on the
  reasoning model ``emulator-reasoner``, 0 on the others), sent before the answer as the message's
  ``reasoning_content`` (or ``emulator.reasoning_field``: ``reasoning``, as OpenRouter names it) and
  counted in ``usage.completion_tokens_details.reasoning_tokens``.

``prompt_tokens`` never exceeds the UTF-8 byte length of ``json.dumps(messages)`` in any spacing:
every message must be an object with a ``role`` key, which alone takes >= 10 bytes for its 3
tokens, and every counted word takes >= 1 byte of its own string. The router relies on this when it
holds funds from a byte-based upper bound.
"""

from __future__ import annotations

import errno
import json
import math
import random
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

WORDS = (
    "This is the ML Router upstream emulator speaking. It returns deterministic text so that tests, "
    "demos and benchmarks can check every token, every chunk and every cent of the bill."
).split()
REASONING_WORDS = "First I read the question, then I decide what a short answer needs.".split()
REASONING_MODEL = "emulator-reasoner"  # thinks before it answers (`reasoning_content`)
REASONING_FIELDS = ("reasoning_content", "reasoning")
DEFAULT_REASONING_TOKENS = 8
MODELS = ("emulator-small", "emulator-large", REASONING_MODEL)
EMBEDDING_MODEL = "emulator-embed"  # answers POST /v1/embeddings only (emulator/embeddings.py)
DEFAULT_COMPLETION_TOKENS = 12
DEFAULT_TIMEOUT_MS = 30_000
STATUS_FAILS = ("400", "401", "429", "500", "502", "503")  # any other 4xx/5xx code works too
OTHER_FAILS = (
    "timeout",
    "drop_mid_stream",
    "error_mid_stream",
    "no_usage",
    "negative_usage",
    "absurd_usage",
    "deep_json",
)
MID_STREAM_FAILS = ("drop_mid_stream", "error_mid_stream")
JSON_TYPE, SSE_TYPE = "application/json", "text/event-stream"
DONE = b"data: [DONE]\n\n"
MID_STREAM_ERROR = {"error": {"message": "upstream failure", "type": "server_error", "code": 500}}
# `deep_json`: valid JSON nested deeper than any decoder's recursion limit (the plain answer, or one event
# mid-stream), as a broken or hostile provider might send.
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
# Bounds on what a request may ask for, so that one request cannot hold a worker or build a huge reply.
MAX_DELAY_MS = 60_000  # each delay knob, and all of a request's emulated waiting together
MAX_TOKENS = 32_000
MAX_N = 8
_MAX_DEPTH = 16
_PIECES = re.compile(r"\s*\S+")
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Emulated bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached (emulated)."),
    500: ("server_error", None, "The server had an error while processing your request (emulated)."),
    502: ("server_error", None, "Bad gateway (emulated)."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later (emulated)."),
}
_FORMAT_SAMPLES = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
}
_NAME_SAMPLES = (
    ("city", "Moscow"),
    ("location", "Moscow"),
    ("country", "Russia"),
    ("email", "user@example.com"),
    ("date", "2024-01-01"),
    ("name", "Alice"),
)


class BadRequest(ValueError):
    """A request the emulator rejects with 400, as OpenAI would."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class StreamDropped(ConnectionResetError):
    """Raised mid-stream: servers treat ECONNRESET as a quiet disconnect and close without a terminator."""

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, "emulated upstream connection drop")


@dataclass(slots=True)
class Reply:
    """What an adapter sends: after `delay` seconds, `status` with `body` or the `events` stream."""

    status: int
    body: bytes = b""
    delay: float = 0.0
    events: Iterator[bytes | float] | None = None  # bytes: send now; float: go silent that many seconds

    @property
    def status_line(self) -> str:
        """WSGI status line, tolerant of codes http.HTTPStatus does not know."""
        try:
            return f"{self.status} {HTTPStatus(self.status).phrase}"
        except ValueError:
            return f"{self.status} Error"

    def header_list(self) -> list[tuple[str, str]]:
        """Response headers; SSE disables caching and proxy buffering so chunks flow immediately."""
        if self.events is not None:
            return [("Content-Type", SSE_TYPE), ("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]
        return [("Content-Type", JSON_TYPE), ("Content-Length", str(len(self.body)))]


@dataclass(slots=True)
class Answer:
    """The assistant message every choice carries."""

    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    tokens: int  # per choice, the reasoning's included
    reasoning: str = ""  # what the model thought before answering
    reasoning_field: str = "reasoning_content"  # the message's (and the deltas') field that carries it


@dataclass(slots=True)
class Call:
    """A validated chat request with its steering options and precomputed answer."""

    body: dict[str, Any]
    headers: Mapping[str, str | None]
    opts: dict[str, Any]
    fail: str | None
    model: str
    n: int
    prompt_tokens: int
    answer: Answer
    id: str
    created: int


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def count_words(text: Any) -> int:
    """Whitespace-separated words of a string; anything else counts as zero."""
    return len(text.split()) if isinstance(text, str) else 0


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message's content: a string, or its text parts joined by spaces."""
    content = message.get("content")
    if isinstance(content, list):
        parts = (p.get("text") for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
        return " ".join(p for p in parts if isinstance(p, str))
    return content if isinstance(content, str) else ""


def count_prompt_tokens(messages: list[Mapping[str, Any]]) -> int:
    """prompt_tokens per the module docstring's rule."""
    total = 3
    for message in messages:
        total += 3 + count_words(message_text(message))
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                total += count_words(call["function"].get("arguments"))
    return total


def error_reply(status: int, message: str | None = None, *, param: str | None = None, delay: float = 0.0) -> Reply:
    """An OpenAI-shaped error response with the given HTTP status."""
    fallback = ("invalid_request_error" if status < 500 else "server_error", None, f"Emulated HTTP {status}.")
    type_, code, default_message = _ERRORS.get(status, fallback)
    body = {"error": {"message": message or default_message, "type": type_, "param": param, "code": code}}
    return Reply(status, dumps(body), delay=delay)


def auth_error(authorization: str | None, api_key: str | None) -> Reply | None:
    """401 unless `api_key` is unset or the Authorization header is `Bearer <api_key>`."""
    if not api_key:
        return None
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), api_key.encode()):
        return None
    return error_reply(401)


def models_body() -> dict[str, Any]:
    """The /v1/models list."""
    names = (*MODELS, EMBEDDING_MODEL)
    data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "emulator"} for m in names]
    return {"object": "list", "data": data}


def models_reply(fail_mode: str | None = None) -> Reply:
    """/v1/models; a status-code or mid-stream fail mode in the path fails it too (the provider is down)."""
    status = _fail_status(fail_mode) or (500 if fail_mode in MID_STREAM_FAILS else 0)
    return error_reply(status) if status else Reply(200, dumps(models_body()))


def chat_reply(raw: bytes, headers: Mapping[str, str | None], fail_mode: str | None = None) -> Reply:
    """Full handling of one chat-completions request body (auth is the adapter's job)."""
    try:
        call = parse_chat(raw, headers, fail_mode)
    except BadRequest as exc:
        return error_reply(400, str(exc), param=exc.param)
    delay = (call.opts["delay_ms"] + (call.opts["timeout_ms"] if call.fail == "timeout" else 0)) / 1000
    status = _fail_status(call.fail) or (500 if call.fail in MID_STREAM_FAILS and not _streams(call) else 0)
    if status:
        return error_reply(status, delay=delay)
    if _streams(call):
        return Reply(200, delay=delay, events=stream_events(call))
    if call.fail == "deep_json":
        return Reply(200, DEEP_JSON, delay=delay)
    return Reply(200, dumps(completion_body(call)), delay=delay)


def play(events: Iterator[bytes | float], sleep: Callable[[float], None]) -> Iterator[bytes]:
    """Turn core stream events into bytes for a server, sleeping on pauses."""
    for event in events:
        if isinstance(event, bytes):
            yield event
        else:
            sleep(event)


def parse_chat(raw: bytes, headers: Mapping[str, str | None], fail_mode: str | None = None) -> Call:
    """Validate a request body and precompute its answer; raises BadRequest."""
    try:
        body = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise BadRequest(f"We could not parse the JSON body of your request: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("Missing required parameter: 'messages' (a non-empty array).", "messages")
    if not all(isinstance(m, dict) and "role" in m for m in messages):  # the byte bound relies on it
        raise BadRequest("Every message must be an object with a 'role'.", "messages")
    opts = _options(body.get("emulator"))
    fail = _fail_mode(fail_mode if fail_mode is not None else opts.get("fail"))
    model = body.get("model") or MODELS[0]
    if not isinstance(model, str):
        raise BadRequest("'model' must be a string.", "model")
    if model == EMBEDDING_MODEL:
        raise BadRequest(f"'{model}' is an embedding model: use /v1/embeddings.", "model")
    n = _int(1 if body.get("n") is None else body["n"], "n", 1, MAX_N)
    call = Call(
        body,
        headers,
        opts,
        fail,
        model,
        n,
        count_prompt_tokens(messages),
        build_answer(body, opts),
        f"chatcmpl-emu-{secrets.token_hex(12)}",
        int(time.time()),
    )
    waited = _waiting_ms(call)
    if waited > MAX_DELAY_MS:
        raise BadRequest(f"The emulated delays add up to {waited} ms; at most {MAX_DELAY_MS} are allowed.", "emulator")
    return call


def _waiting_ms(call: Call) -> int:
    """All the emulated waiting of a request: before the reply, then (streamed) between its chunks."""
    waited = call.opts["delay_ms"] + (call.opts["timeout_ms"] if call.fail == "timeout" else 0)
    if _streams(call):  # at most: every step of every choice, the usage chunk and [DONE], one gap apart
        gaps = (len(_deltas(call.answer, call.opts["chunk_words"])) + 2) * call.n + 1
        waited += call.opts["pause_ms"] + (call.opts["chunk_delay_ms"] + call.opts["chunk_jitter_ms"]) * gaps
    return waited


def _streams(call: Call) -> bool:
    """Whether the client asked for SSE."""
    return call.body.get("stream") is True


def _options(raw: Any) -> dict[str, Any]:
    """Normalized `emulator` steering options (unknown keys kept but ignored)."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise BadRequest("'emulator' must be an object.", "emulator")
    limits = {
        "completion_tokens": (DEFAULT_COMPLETION_TOKENS, 0, MAX_TOKENS),
        "tool_calls": (1, 1, 128),
        "delay_ms": (0, 0, MAX_DELAY_MS),
        "chunk_delay_ms": (0, 0, MAX_DELAY_MS),
        "pause_ms": (0, 0, MAX_DELAY_MS),
        "pause_after": (1, 0, 10**6),
        "chunk_jitter_ms": (0, 0, MAX_DELAY_MS),
        "chunk_words": (1, 1, 64),
        "timeout_ms": (DEFAULT_TIMEOUT_MS, 0, MAX_DELAY_MS),
    }
    opts = dict(raw)
    for key, (default, low, high) in limits.items():
        opts[key] = _int(default if raw.get(key) is None else raw[key], f"emulator.{key}", low, high)
    if raw.get("cached_tokens") is not None:
        opts["cached_tokens"] = _int(raw["cached_tokens"], "emulator.cached_tokens", 0, MAX_TOKENS)
    if raw.get("reasoning_tokens") is not None:
        opts["reasoning_tokens"] = _int(raw["reasoning_tokens"], "emulator.reasoning_tokens", 0, MAX_TOKENS)
    if raw.get("reasoning_field") is not None and raw["reasoning_field"] not in REASONING_FIELDS:
        raise BadRequest(f"'emulator.reasoning_field' must be one of {', '.join(REASONING_FIELDS)}.", "emulator")
    if raw.get("usage_cost") is not None:
        opts["usage_cost"] = _number(raw["usage_cost"], "emulator.usage_cost")
    return opts


def _int(value: Any, param: str, low: int, high: int) -> int:
    """An integer option in [low, high]; integral floats and digit strings are accepted."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise BadRequest(f"'{param}' must be an integer.", param)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"'{param}' must be an integer.", param)
    if not low <= number <= high:
        raise BadRequest(f"'{param}' must be between {low} and {high}.", param)
    return number


def _number(value: Any, param: str) -> float | int:
    """A finite JSON number from a number or numeric string."""
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer of hundreds of digits
        number = math.nan
    if not math.isfinite(number):
        raise BadRequest(f"'{param}' must be a finite number.", param)
    return value if isinstance(value, int) else number


def _fail_mode(value: Any) -> str | None:
    """A supported fail mode: the named ones or any 4xx/5xx status code."""
    mode = None if value is None or value == "" else str(value)
    if mode is None or mode in OTHER_FAILS or _fail_status(mode):
        return mode
    raise BadRequest(f"Unknown emulator fail mode {mode!r}.", "emulator.fail")


def _fail_status(mode: str | None) -> int:
    """HTTP status for a status-code fail mode, else 0."""
    return int(mode) if mode and len(mode) == 3 and mode.isdigit() and 400 <= int(mode) <= 599 else 0


def build_answer(body: dict[str, Any], opts: dict[str, Any]) -> Answer:
    """Tool calls, JSON or plain text, per the request; the reasoning model's thoughts before them."""
    answer = _answer(body, opts)
    default = DEFAULT_REASONING_TOKENS if body.get("model") == REASONING_MODEL else 0
    words = opts.get("reasoning_tokens", default)
    if words:
        answer.reasoning = " ".join(REASONING_WORDS[i % len(REASONING_WORDS)] for i in range(words))
        answer.reasoning_field = opts.get("reasoning_field", REASONING_FIELDS[0])
        answer.tokens += words
    return answer


def _answer(body: dict[str, Any], opts: dict[str, Any]) -> Answer:
    """Tool calls, JSON or plain text, per the request."""
    tools = [t["function"] for t in body.get("tools") or () if _is_function_tool(t)]
    last = body["messages"][-1]
    if tools and body.get("tool_choice") != "none" and last.get("role") != "tool":
        calls = _tool_calls(body, opts, tools)
        return Answer(None, calls, "tool_calls", sum(count_words(c["function"]["arguments"]) for c in calls))
    wanted = opts["completion_tokens"]
    param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    size = wanted if body.get(param) is None else min(wanted, _int(body[param], param, 1, 10**9))
    finish = "length" if size < wanted else "stop"
    prefix = ["The", "tool", "returned:", *message_text(last).split()] if last.get("role") == "tool" else []
    text = " ".join((prefix + [WORDS[i % len(WORDS)] for i in range(size)])[:size])
    fmt = body.get("response_format") if isinstance(body.get("response_format"), dict) else {}
    if fmt.get("type") == "json_object":
        text = dumps({"answer": text}).decode()
    elif fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt.get("json_schema"), dict) else {}
        text, finish = dumps(sample_value(spec.get("schema") or {"type": "object"})).decode(), "stop"
    return Answer(text, None, finish, count_words(text))


def _is_function_tool(tool: Any) -> bool:
    """Whether a `tools` entry is a callable function definition."""
    return (
        isinstance(tool, dict)
        and tool.get("type", "function") == "function"
        and isinstance(tool.get("function"), dict)
        and isinstance(tool["function"].get("name"), str)
    )


def _tool_calls(body: dict[str, Any], opts: dict[str, Any], tools: list[dict[str, Any]]) -> list[dict]:
    """The forced function, else the first tool, else (parallel) the first N tools, cycling if N > len."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        chosen = [t for t in tools if t["name"] == name][:1]
        if not chosen:
            raise BadRequest(f"tool_choice names unknown function {name!r}.", "tool_choice")
    else:
        count = opts["tool_calls"] if body.get("parallel_tool_calls") is not False else 1
        chosen = [tools[i % len(tools)] for i in range(count)]
    return [
        {
            "id": f"call_emu_{i}",
            "type": "function",
            "function": {"name": fn["name"], "arguments": dumps(_arguments(fn.get("parameters"))).decode()},
        }
        for i, fn in enumerate(chosen)
    ]


def _arguments(parameters: Any) -> dict[str, Any]:
    """Sample arguments; always a JSON object, even for a missing or non-object parameters schema."""
    value = sample_value(parameters or {"type": "object"})
    return value if isinstance(value, dict) else {}


def sample_value(schema: Any, name: str = "", root: Any = None, depth: int = 0) -> Any:
    """A deterministic value valid for a (reasonably simple) JSON schema: required props, typed values."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:  # the depth cap stops recursive $refs
        return None
    root = schema if root is None else root
    if isinstance(schema.get("$ref"), str):  # local refs only: "#/$defs/X", "#/definitions/X"
        target: Any = root
        for key in schema["$ref"].lstrip("#/").split("/"):
            target = target.get(key, {}) if isinstance(target, dict) else {}
        return sample_value(target, name, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return sample_value(schema[key][0], name, root, depth + 1)
    kind = _schema_type(schema)
    if kind == "object":
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        return {
            key: sample_value(props.get(key, {}), key, root, depth + 1) for key in schema.get("required") or list(props)
        }
    if kind == "array":
        count = min(int(schema.get("minItems") or 0), 16)
        return [sample_value(schema.get("items", {}), name, root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        value = max(1, low) if isinstance(low, int | float) else 1
        return min(value, high) if isinstance(high, int | float) else value
    return {"boolean": True, "null": None}.get(kind, _sample_string(schema, name))


def _schema_type(schema: dict[str, Any]) -> str:
    """The first non-null declared type, or one inferred from keywords."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    return "object" if "properties" in schema else "array" if "items" in schema else "string"


def _sample_string(schema: dict[str, Any], name: str) -> str:
    """A string sample chosen by format, then by property name, else 'sample'."""
    if schema.get("format") in _FORMAT_SAMPLES:
        return _FORMAT_SAMPLES[schema["format"]]
    return next((sample for key, sample in _NAME_SAMPLES if key in name.lower()), "sample")


def usage_body(call: Call) -> dict[str, Any] | None:
    """The usage object, shaped by the usage fail modes and the cached_tokens / usage_cost options."""
    if call.fail == "no_usage":
        return None
    bogus = {"negative_usage": -5, "absurd_usage": 10**12}
    completion = bogus.get(call.fail or "", call.answer.tokens * call.n)
    prompt = call.prompt_tokens
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if call.answer.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": count_words(call.answer.reasoning) * call.n}
    if "cached_tokens" in call.opts:
        usage["prompt_tokens_details"] = {"cached_tokens": min(call.opts["cached_tokens"], prompt)}
    if "usage_cost" in call.opts:
        usage["cost"] = call.opts["usage_cost"]
    return usage


def received(call: Call) -> dict[str, Any]:
    """What `emulator.echo` reports back; never the Authorization value itself."""
    headers = {
        "content-type": call.headers.get("content-type"),
        "user-agent": call.headers.get("user-agent"),
        "authorization_present": bool(call.headers.get("authorization")),
    }
    return {"body": call.body, "headers": headers}


def completion_body(call: Call) -> dict[str, Any]:
    """The plain (non-streamed) chat.completion object."""
    message: dict[str, Any] = {"role": "assistant", "content": call.answer.content, "refusal": None}
    if call.answer.reasoning:
        message[call.answer.reasoning_field] = call.answer.reasoning
    if call.answer.tool_calls:
        message["tool_calls"] = call.answer.tool_calls
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": call.answer.finish_reason}
        for i in range(call.n)
    ]
    out: dict[str, Any] = {
        "id": call.id,
        "object": "chat.completion",
        "created": call.created,
        "model": call.model,
        "system_fingerprint": "fp_emulator",
        "choices": choices,
    }
    usage = usage_body(call)
    if usage is not None:
        out["usage"] = usage
    if call.opts.get("echo"):
        out["emulator_received"] = received(call)
    return out


def _deltas(answer: Answer, words: int = 1) -> list[dict[str, Any]]:
    """Deltas between the role chunk and the finish chunk: the reasoning's words, then the answer's words,
    or tool-call header + fragments.

    Text comes one word a chunk, each with its leading whitespace; with `chunk_words` > 1 the answer's chunks
    carry 1, 2, … up to that many words in turn, as a real model's tokens group unevenly.
    """
    deltas: list[dict[str, Any]] = [{answer.reasoning_field: piece} for piece in _PIECES.findall(answer.reasoning)]
    if not answer.tool_calls:
        pieces = _PIECES.findall(answer.content or "")
        at, size = 0, 1
        while at < len(pieces):
            deltas.append({"content": "".join(pieces[at : at + size])})
            at, size = at + size, size % words + 1
        return deltas
    for index, call in enumerate(answer.tool_calls):
        name, arguments = call["function"]["name"], call["function"]["arguments"]
        header = {"index": index, "id": call["id"], "type": "function", "function": {"name": name, "arguments": ""}}
        deltas.append({"tool_calls": [header]})
        step = max(1, -(-len(arguments) // 3))  # about three fragments, as OpenAI streams them
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + step]}}]}
            for i in range(0, len(arguments), step)
        ]
    return deltas


def stream_events(call: Call) -> Iterator[bytes | float]:
    """SSE events for a streamed answer, with `chunk_delay_ms` gaps as floats between them.

    `chunk_jitter_ms` lengthens each gap by a random share of that many milliseconds, so that concurrent
    streams pace like real models (50–100 chunks/s: a delay of 10 and a jitter of 10) instead of in step.
    """
    gap, jitter = call.opts["chunk_delay_ms"] / 1000, call.opts["chunk_jitter_ms"] / 1000
    uniform = random.Random(call.id).uniform
    for position, event in enumerate(_stream_chunks(call)):
        if position and (gap or jitter) and isinstance(event, bytes):
            yield gap + uniform(0, jitter) if jitter else gap
        yield event


def _stream_chunks(call: Call) -> Iterator[bytes | float]:
    """Role chunk, body chunks, finish chunk, usage chunk and [DONE], or the requested mid-stream failure."""
    stream_options = call.body.get("stream_options")
    asked = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    usage = usage_body(call) if asked else None
    head = {
        "id": call.id,
        "object": "chat.completion.chunk",
        "created": call.created,
        "model": call.model,
        "system_fingerprint": "fp_emulator",
    }
    body = _deltas(call.answer, call.opts["chunk_words"])
    cut = len(body) // 2 if call.fail in MID_STREAM_FAILS else None
    steps = [
        ({"role": "assistant", "content": None if call.answer.tool_calls else ""}, None),
        *((delta, None) for delta in body[:cut]),
        *([] if cut is not None else [({}, call.answer.finish_reason)]),
    ]
    for position, (delta, finish) in enumerate(steps):
        for index in range(call.n):
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            chunk: dict[str, Any] = {**head, "choices": [choice]}
            if usage is not None:  # OpenAI marks every chunk with usage: null when usage was asked for
                chunk["usage"] = None
            if position == 0 and index == 0 and call.opts.get("echo"):
                chunk["emulator_received"] = received(call)
            yield b"data: " + dumps(chunk) + b"\n\n"
        if call.fail == "deep_json" and position == len(steps) // 2:
            yield b"data: " + DEEP_JSON + b"\n\n"  # then the stream goes on as if nothing happened
        if call.opts["pause_ms"] and position == call.opts["pause_after"]:
            yield call.opts["pause_ms"] / 1000
    if call.fail == "drop_mid_stream":
        raise StreamDropped
    if call.fail == "error_mid_stream":
        yield b"data: " + dumps(MID_STREAM_ERROR) + b"\n\n"
        return
    if usage is not None:
        yield b"data: " + dumps({**head, "choices": [], "usage": usage}) + b"\n\n"
    yield DONE
