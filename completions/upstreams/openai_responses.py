"""The `openai-responses` upstream kind: providers speaking OpenAI's Responses API (POST /responses).

Two ways a request reaches it:

- natively, from the Responses surface: the client's body goes as it is but for `model` (and our own
  `models`/`provider`), so reasoning items with their `encrypted_content`, `include`, built-in tools, `store`
  and whatever else the provider takes reach it. The answer comes back as the provider sent it, with our id
  (the response is stored under it, as a translated one is), our model name and the exact cost in its usage;
  a stream is relayed event by event, only the response snapshots of `response.created`/`.in_progress`
  rewritten (our id and model) and the final `response.completed` (`.incomplete`, `.failed`) held back until
  the cost is known (`Passthrough`). `previous_response_id` names one of our stored responses, which the
  provider never saw: the stored conversation goes first in `input` instead (item ids dropped but reasoning
  items', which the provider needs with their `encrypted_content`), and `previous_response_id` is not
  forwarded;
- translated, from a surface that speaks Chat Completions (chat completions, and Messages by way of it): the
  chat body becomes a Responses body (`responses_body_of`), and the answer a chat completion
  (`chat_answer_of`) or chat chunks (`chat_events`).

The translation tables are the docs pages "Chat completions" and "Responses (OpenAI)"; each row is tested in
tests/completions/test_responses_translated.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from core import exactjson

from .base import Passthrough, PlainRead, Upstream
from .openai_chat import bearer, completion_chars
from .sse import data_frames, frame_data, frames

if TYPE_CHECKING:
    import urllib3
    from django.http import HttpRequest

    from completions.routing import RouteInfo
    from completions.settlement import Finished, Started

# Our own request fields, which the provider must not see.
OURS = ("models", "provider")
FORWARDED_HEADERS = (("HTTP_OPENAI_BETA", "openai-beta"),)
# The events that end an answer: held back until it is settled, then sent with our usage and cost.
FINAL = ("response.completed", "response.incomplete")


def answer_ok(body: dict) -> bool:
    """Whether a plain answer is a `response` object the relay can settle."""
    return body.get("object") == "response" and isinstance(body.get("output"), list)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """Responses' usage in Chat Completions' terms (settlement reads those)."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if prompt is None or completion is None:
        return {"prompt_tokens": None, "completion_tokens": None}  # settlement then estimates
    inputs = usage.get("input_tokens_details") if isinstance(usage.get("input_tokens_details"), dict) else {}
    outputs = usage.get("output_tokens_details") if isinstance(usage.get("output_tokens_details"), dict) else {}
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _count(inputs.get("cached_tokens")) or 0},
        "completion_tokens_details": {"reasoning_tokens": _count(outputs.get("reasoning_tokens")) or 0},
    }


# --- Chat Completions -> Responses ---------------------------------------------------------------------

# Chat fields with no Responses counterpart: dropped. Any field not named here or translated below (a
# provider's extension) is forwarded as it came, as the Responses surface forwards one to a chat route.
DROPPED = frozenset(
    {
        "n", "seed", "stop", "logit_bias", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty",
        "stream_options", "modalities", "audio", "prediction", "web_search_options", "functions", "function_call",
    }
)  # fmt: skip
TRANSLATED = frozenset(
    {
        "model", "messages", "tools", "tool_choice", "response_format", "max_tokens", "max_completion_tokens",
        "reasoning_effort", "verbosity", "store",
    }
)  # fmt: skip
# Responses' `incomplete_details.reason` as a chat `finish_reason`.
FINISH_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else ()
    return "".join(p.get("text") or "" for p in parts if isinstance(p, dict) and p.get("type") == "text")


def _user_content(content: Any) -> str | list[dict[str, Any]]:
    """A user message's content: a string as it is, parts as Responses' input parts."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "input_text", "text": part.get("text") or ""})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            image = part["image_url"]
            detail = image.get("detail") or "auto"
            parts.append({"type": "input_image", "image_url": image.get("url", ""), "detail": detail})
        elif kind == "file" and isinstance(part.get("file"), dict):
            parts.append({"type": "input_file", **part["file"]})
    return parts


def input_of(messages: list[dict]) -> tuple[list[str], list[dict[str, Any]]]:
    """System texts (the `instructions`), and the input items: an assistant's tool calls become
    `function_call` items after its text, tool messages `function_call_output` items."""
    system: list[str] = []
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
        elif role == "tool":
            output = _text(message.get("content"))
            items.append({"type": "function_call_output", "call_id": message.get("tool_call_id", ""), "output": output})
        elif role == "assistant":
            text = _text(message.get("content"))
            if text:
                items.append({"type": "message", "role": "assistant", "content": text})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {} if isinstance(call, dict) else {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "arguments": function.get("arguments") or "",
                    }
                )
        else:
            items.append({"type": "message", "role": "user", "content": _user_content(message.get("content"))})
    return system, items


def _tool(function: dict[str, Any]) -> dict[str, Any]:
    # Responses takes a function as strict unless told: chat's are not, so that is said.
    tool = {"type": "function", "name": function.get("name", "")}
    if function.get("description"):
        tool["description"] = function["description"]
    tool["parameters"] = function.get("parameters") or {"type": "object", "properties": {}}
    tool["strict"] = function.get("strict") is True
    return tool


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "function", "name": choice["function"].get("name", "")}
    return None


def _format(response_format: Any) -> dict[str, Any] | None:
    """Chat's `response_format` as Responses' `text.format`."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
        spec = response_format["json_schema"]
        out = {"type": "json_schema", "name": spec.get("name") or "response", "schema": spec.get("schema") or {}}
        for name in ("strict", "description"):
            if spec.get(name) is not None:
                out[name] = spec[name]
        return out
    return None


def responses_body_of(chat: dict[str, Any]) -> dict[str, Any]:
    """The Responses body a chat completion body translates to (see the docs' table)."""
    system, items = input_of(chat.get("messages") or [])
    out: dict[str, Any] = {"model": chat.get("model"), "input": items}
    if system:
        out["instructions"] = "\n\n".join(system)
    out.update((name, value) for name, value in chat.items() if name not in DROPPED and name not in TRANSLATED)
    limit = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if limit:
        out["max_output_tokens"] = limit
    tools = [t.get("function") for t in chat.get("tools") or () if isinstance(t, dict)]
    tools = [function for function in tools if isinstance(function, dict)]
    if tools:
        out["tools"] = [_tool(function) for function in tools]
        choice = _tool_choice(chat.get("tool_choice"))
        if choice is not None:
            out["tool_choice"] = choice
    text = {}
    if (fmt := _format(chat.get("response_format"))) is not None:
        text["format"] = fmt
    if chat.get("verbosity") is not None:
        text["verbosity"] = chat["verbosity"]
    if text:
        out["text"] = text
    if chat.get("reasoning_effort") is not None:
        out["reasoning"] = {"effort": chat["reasoning_effort"]}
    out["store"] = chat.get("store") is True  # a chat completion keeps nothing at the provider unless asked
    return out


def translate(body: bytes) -> bytes:
    return json.dumps(responses_body_of(json.loads(body)), ensure_ascii=False, separators=(",", ":")).encode()


# --- Responses -> Chat Completions ---------------------------------------------------------------------


def _reasoning_text(item: dict[str, Any]) -> str:
    """A reasoning item's readable text: its summary, else its own reasoning text (open models give that)."""
    parts = item.get("summary") or item.get("content") or ()
    return "\n\n".join(p.get("text") or "" for p in parts if isinstance(p, dict))


def _finish(status: Any, incomplete: Any, called: bool) -> str:
    if status == "incomplete":
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return FINISH_REASONS.get(reason or "", "length")
    return "tool_calls" if called else "stop"


def chat_answer_of(response: dict[str, Any]) -> dict[str, Any]:
    """A `response` object as a chat completion (see the docs' table)."""
    texts, refusals, reasoning, calls = [], [], [], []
    for item in response.get("output") or ():
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    refusals.append(part.get("refusal") or "")
        elif kind == "reasoning":
            reasoning.append(_reasoning_text(item))
        elif kind == "function_call":
            function = {"name": item.get("name", ""), "arguments": item.get("arguments") or ""}
            calls.append({"id": item.get("call_id") or item.get("id", ""), "type": "function", "function": function})
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if refusals:
        reply["refusal"] = "".join(refusals)
    if any(reasoning):
        reply["reasoning_content"] = "\n\n".join(text for text in reasoning if text)
    if calls:
        reply["tool_calls"] = calls
    finish = _finish(response.get("status"), response.get("incomplete_details"), bool(calls))
    answer: dict[str, Any] = {
        "id": response.get("id", ""),
        "object": "chat.completion",
        "created": response.get("created_at"),
        "model": response.get("model", ""),
        "choices": [{"index": 0, "message": reply, "finish_reason": finish}],
    }
    usage = chat_usage(response.get("usage"))
    if usage is not None:
        answer["usage"] = usage
    return answer


# The typed events whose `delta` is a piece of the chat message, and the field it goes to.
DELTAS = {
    "response.output_text.delta": "content",
    "response.refusal.delta": "refusal",
    "response.reasoning_summary_text.delta": "reasoning_content",
    "response.reasoning_text.delta": "reasoning_content",
}


def chat_events(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """A Responses event stream as chat chunk payloads (then `[DONE]`), for the relay's translated path."""
    head: dict[str, Any] = {"id": "", "object": "chat.completion.chunk", "model": ""}
    tools: dict[int, int] = {}  # output index -> tool call index

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return json.dumps({**head, "choices": [choice]}, ensure_ascii=False).encode()

    for data in data_frames(response):
        kind = data.get("type")
        if kind in DELTAS:
            yield chunk({DELTAS[kind]: data.get("delta") or ""})
        elif kind == "response.function_call_arguments.delta" and data.get("output_index") in tools:
            call = {"index": tools[data["output_index"]], "function": {"arguments": data.get("delta") or ""}}
            yield chunk({"tool_calls": [call]})
        elif kind == "response.output_item.added":
            item = data.get("item") if isinstance(data.get("item"), dict) else {}
            if item.get("type") == "function_call":
                at = tools.setdefault(data.get("output_index", len(tools)), len(tools))
                function = {"name": item.get("name", ""), "arguments": item.get("arguments") or ""}
                call = {"index": at, "id": item.get("call_id") or item.get("id", ""), "type": "function"}
                yield chunk({"tool_calls": [{**call, "function": function}]})
        elif kind == "response.reasoning_summary_part.added" and data.get("summary_index"):
            yield chunk({"reasoning_content": "\n\n"})  # summary parts read apart, as in a plain answer
        elif kind == "response.created":
            snapshot = data.get("response") if isinstance(data.get("response"), dict) else {}
            head["id"], head["model"] = snapshot.get("id", ""), snapshot.get("model", "")
            yield chunk({"role": "assistant", "content": ""})
        elif kind in ("response.completed", "response.incomplete"):
            final = data.get("response") if isinstance(data.get("response"), dict) else {}
            yield chunk({}, _finish(final.get("status"), final.get("incomplete_details"), bool(tools)))
            yield json.dumps({**head, "choices": [], "usage": chat_usage(final.get("usage"))}).encode()
            yield b"[DONE]"
            return
        elif kind in ("response.failed", "error"):
            final = data.get("response") if isinstance(data.get("response"), dict) else {}
            usage = chat_usage(final.get("usage"))
            if usage is not None:  # what was reported is what settles the broken stream
                yield json.dumps({**head, "choices": [], "usage": usage}).encode()
            error = final.get("error") if isinstance(final.get("error"), dict) else data
            message, code = error.get("message") or "", error.get("code") or "server_error"
            yield json.dumps({"error": {"message": message, "type": code}}).encode()
            return


# --- Native: the Responses surface on a Responses route ----------------------------------------------


def _forwardable(item: dict[str, Any]) -> dict[str, Any]:
    """A stored conversation's item as the provider takes it back: without our item ids (it never stored
    them), but a reasoning item keeps its own, which goes with its `encrypted_content`."""
    if item.get("type") == "reasoning":
        return item
    return {name: value for name, value in item.items() if name != "id"}


def native_body(request: Any, route: RouteInfo) -> bytes:
    """The client's Responses body as it came, with the route's model name and without our own fields; a
    continued conversation (`previous_response_id`, ours) as items before the request's own input."""
    body = {name: value for name, value in request.responses.items() if name not in OURS}
    body["model"] = route.upstream_model
    if request.previous_response_id:
        own = body.get("input")
        if isinstance(own, str):
            own = [{"type": "message", "role": "user", "content": own}]
        body["input"] = [_forwardable(item) for item in request.context] + list(own or ())
        body.pop("previous_response_id", None)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def native_headers(request: HttpRequest) -> dict[str, str]:
    """The client's `OpenAI-Beta`, passed on as it is."""
    return {name: request.META[key] for key, name in FORWARDED_HEADERS if request.META.get(key)}


# --- The answer ------------------------------------------------------------------------------------------


def _generated(item: Any) -> int:
    """Characters an output item (or an event's delta) generated."""
    if isinstance(item, str):
        return len(item)
    if not isinstance(item, dict):
        return 0
    total = 0
    for name in ("text", "arguments", "input", "refusal"):
        if isinstance(item.get(name), str):
            total += len(item[name])
    for name in ("content", "summary"):
        for part in item.get(name) or ():
            total += _generated(part)
    return total


def _finish_reason(response: dict[str, Any]) -> str:
    details = response.get("incomplete_details")
    if response.get("status") == "incomplete" and isinstance(details, dict) and details.get("reason"):
        return str(details["reason"])
    return str(response.get("status") or "")


def native_read(body: dict) -> PlainRead:
    return PlainRead(
        usage=chat_usage(body.get("usage")),
        completion_chars=sum(_generated(item) for item in body["output"]),
        finish_reason=_finish_reason(body),
        upstream_id=str(body.get("id") or ""),
    )


def _usage_with_cost(started: Started, upstream: Any, finished: Finished) -> dict[str, Any]:
    """The provider's usage object, its counts replaced by what we charged for, with our exact cost."""
    from ..surfaces.responses import usage_out  # imported here: the surface declares this kind native

    usage = dict(upstream) if isinstance(upstream, dict) and finished.usage_source == "upstream" else {}
    usage.pop("cost", None)
    return {**usage, **usage_out(started, finished, chat_usage(upstream))}


def _ours(response: dict[str, Any], started: Started) -> dict[str, Any]:
    """A response snapshot under our id and model name, continuing our stored response if it does."""
    return {
        **response,
        "id": started.generation_id,
        "model": started.entry.public_id,
        "previous_response_id": started.request.previous_response_id,
    }


def native_answer(body: dict, started: Started, finished: Finished) -> bytes:
    """The provider's response as it came, with our id, our model name and the exact cost (kept, when the
    client stores it, by the surface's `settled`)."""
    answer = {**_ours(body, started), "usage": _usage_with_cost(started, body.get("usage"), finished)}
    started.request.answer = answer
    return exactjson.dumps(answer).encode()


def _frame(data: dict[str, Any]) -> bytes:
    return b"event: " + str(data.get("type")).encode() + b"\ndata: " + exactjson.dumps(data).encode() + b"\n\n"


class NativeEvents:
    """One native stream: relays each event as it came but the response snapshots (our id and model), and
    holds back the final event until the stream is settled."""

    def __init__(self, started: Started) -> None:
        self.started = started
        self.usage: dict[str, Any] | None = None
        self.finish_reason = ""
        self.upstream_id = ""
        self.error = ""
        self.done = False
        self.snapshot: dict[str, Any] = {}  # the latest response object the provider sent
        self.held: dict[str, Any] | None = None  # the final event
        self.sequence = -1  # the last sequence number relayed

    def _response(self, data: dict[str, Any]) -> dict[str, Any]:
        response = data.get("response") if isinstance(data.get("response"), dict) else {}
        self.snapshot = response
        self.upstream_id = self.upstream_id or str(response.get("id") or "")
        return response

    def feed(self, frame: bytes) -> tuple[bytes, int]:
        data = frame_data(frame)
        if data is None:
            return frame + b"\n\n", 0
        kind = data.get("type")
        if isinstance(data.get("sequence_number"), int) and kind != "error":  # `error` is not relayed
            self.sequence = data["sequence_number"]
        if kind in ("response.created", "response.in_progress", "response.queued"):
            response = self._response(data)
            return _frame({**data, "response": _ours(response, self.started)}), 0
        if kind in (*FINAL, "response.failed"):
            response = self._response(data)
            self.usage = chat_usage(response.get("usage"))
            self.finish_reason = _finish_reason(response)
            self.held = data
            if kind == "response.failed":
                error = response.get("error") if isinstance(response.get("error"), dict) else {}
                self.error = f"the upstream reported the response failed ({error.get('code') or 'unknown'})"
            else:
                self.done = True
            return b"", 0
        if kind == "error":
            self.error = f"the upstream reported an error mid-stream ({data.get('code') or 'unknown'})"
            return b"", 0
        if isinstance(kind, str) and kind.endswith(".delta"):
            return frame + b"\n\n", _generated(data.get("delta"))
        return frame + b"\n\n", 0

    def final(self, finished: Finished | None, error: str = "") -> bytes:
        """The final event with our usage and cost: the provider's own, or `response.failed` when the stream
        broke off (with the cost, when it was charged for what came)."""
        started = self.started
        if self.held is not None and (not error or self.held.get("type") == "response.failed"):
            event = self.held  # the provider's own end (a failure with its own error)
        else:
            message = f"Stream interrupted: {error or 'settling failed'}."
            failed = {**self.snapshot, "status": "failed", "error": {"code": "server_error", "message": message}}
            event = {"type": "response.failed", "response": failed, "sequence_number": self.sequence + 1}
        response = _ours(event["response"], started)
        response["usage"] = _usage_with_cost(started, response.get("usage"), finished) if finished else None
        if finished is not None and started.request.store:
            from ..surfaces.responses import store_quietly

            store_quietly(started, response)
        return _frame({**event, "response": response})


PASSTHROUGH = Passthrough(
    body=native_body,
    headers=native_headers,
    read=native_read,
    answer=native_answer,
    events=frames,
    stream=NativeEvents,
)

UPSTREAM = Upstream(
    kind="openai-responses",
    endpoint="/responses",
    auth=bearer,
    events=chat_events,
    completion_chars=completion_chars,
    answer_ok=answer_ok,
    accepts=frozenset({"openai-chat"}),
    translate=translate,
    plain=chat_answer_of,
    passthrough=PASSTHROUGH,
)
