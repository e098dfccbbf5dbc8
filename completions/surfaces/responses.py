"""OpenAI's Responses surface (POST /v1/responses): native on `openai-responses` routes, translated onto
the others by way of the chat form (`openai-chat` routes take it as it is, `anthropic-messages` ones translate it).

A native route gets the client's body itself (completions/upstreams/openai_responses/ relays its answer).
For a chat route the Responses body becomes a chat completion body (then goes the chat surface's way: the
route's declared parameters, its model name); the chat answer comes back as a Responses `response` object,
and a chat stream as Responses' typed events, each with its `sequence_number`. The translation table is the
docs page "Responses (OpenAI)" (docs/content/en/responses.md); its reasoning rows are tested in
tests/completions/test_stream_events.py. A body only the Responses API can say (a built-in tool, an item chat
has no counterpart for) is kept for native routes; translated routes refuse it.

A stored response (`store`, true unless the client says) is kept by completions/stored_responses.py once its
charge is written; `previous_response_id` puts the stored conversation before the request's own input
(`bind`, after the key is known: only its account's responses are found).

The client's body is kept as sent (`ResponsesRequest.responses`): a native route is sent it unchanged but for
`model` (and a stored conversation it continues, as input items).

Money leaves as the chat surface's does (core.exactjson): `usage.cost` is exactly what the ledger charged.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from core import exactjson

from ..errors import ApiError, invalid
from . import chat, events
from .base import StreamEnd, Surface, openapi_operation

if TYPE_CHECKING:
    from accounts.principals import KeyPrincipal
    from completions.settlement import Finished, Started

log = logging.getLogger(__name__)

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
# A namespaced function (`{"type": "namespace", "tools": [...]}`) goes upstream as `<namespace>__<name>`:
# chat function names take letters, digits, `_` and `-` only.
NAMESPACE_JOIN = "__"
# Fields of Responses that have no chat counterpart and are refused rather than silently ignored.
REFUSED = {
    "background": "background responses are not supported",
    "conversation": "conversations are not supported; use previous_response_id",
    "prompt": "stored prompt templates are not supported",
}
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# Responses' own fields: translated, echoed in the answer, or accepted and dropped. Any other field (a
# provider's extension) is forwarded to the chat route unchanged, as the chat surface forwards it.
RESPONSES_FIELDS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning",
        "max_output_tokens", "max_tool_calls", "metadata", "store", "include", "previous_response_id", "stream",
        "stream_options", "temperature", "top_p", "top_logprobs", "truncation", "service_tier", "user",
        "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "client_metadata", "background",
        "conversation", "prompt",
    }
)  # fmt: skip


@dataclass
class ResponsesRequest(chat.ChatRequest):
    """A Responses request: the chat request it translates to, plus what the answer and its storage need."""

    responses: dict[str, Any] = field(default_factory=dict)  # the client's body, as sent
    items: list[dict[str, Any]] = field(default_factory=list)  # this request's input items, each with an id
    context: list[dict[str, Any]] = field(default_factory=list)  # the items of `previous_response_id`'s chain
    previous_response_id: str | None = None
    store: bool = True
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # upstream name -> (namespace, name)
    answer: dict[str, Any] | None = None  # the response object as sent, kept (when stored) after the charge
    # Why the body cannot go to a chat route (a built-in tool, an item chat cannot say): only native routes
    # can serve it.
    untranslatable: ApiError | None = None

    @property
    def prompt_tokens_estimate(self) -> int:
        """One token per four bytes of the client's body and of the stored conversation it continues."""
        return math.ceil(self.raw_size / 4)


# --- The request ----------------------------------------------------------------------------------------


def _item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _text_parts(content: Any, where: str, role: str) -> list[dict[str, Any]]:
    """A message's content as Responses parts: a string is one text part (`output_text` for the assistant)."""
    if isinstance(content, str):
        if role == "assistant":
            return [{"type": "output_text", "text": content, "annotations": []}]
        return [{"type": "input_text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
        raise invalid(f"'{where}' must be a string or an array of content parts.", where)
    return content


def _items(value: Any) -> list[dict[str, Any]]:
    """`input` as a list of items, each with a `type` and an `id` (a string is one user message)."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise invalid("'input' is required: a string or a non-empty array of input items.", "input")
    out = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"'{where}' must be an object.", where)
        item = dict(item)
        kind = item.setdefault("type", "message" if "role" in item else None)
        if kind == "message":
            if item.get("role") not in ROLES:
                raise invalid(f"'{where}.role' must be one of user, assistant, system, developer.", f"{where}.role")
            item["content"] = _text_parts(item.get("content"), f"{where}.content", item["role"])
            item.setdefault("id", _item_id("msg"))
        elif kind == "function_call":
            for name in ("call_id", "name", "arguments"):
                if not isinstance(item.get(name), str):
                    raise invalid(f"'{where}.{name}' is required: a string.", f"{where}.{name}")
            item.setdefault("id", _item_id("fc"))
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise invalid(f"'{where}.call_id' is required: a string.", f"{where}.call_id")
            if not isinstance(item.get("output"), str | list):
                raise invalid(f"'{where}.output' must be a string or an array of content parts.", f"{where}.output")
            item.setdefault("id", _item_id("fco"))
        elif kind == "reasoning":
            item.setdefault("id", _item_id("rs"))
        else:
            raise invalid(f"'{where}.type' {kind!r} is not supported on this route.", f"{where}.type")
        out.append(item)
    return out


def _text_of(parts: list[dict[str, Any]]) -> str:
    return "\n\n".join(
        p.get("text") or p.get("refusal") or ""
        for p in parts
        if p.get("type") in ("input_text", "output_text", "text", "refusal")
    )


def _user_content(parts: list[dict[str, Any]], where: str) -> str | list[dict[str, Any]]:
    """Text parts joined into one string; with images, chat's content parts."""
    out = []
    for j, part in enumerate(parts):
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            out.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise invalid(f"'{where}[{j}].image_url' is required (file ids are not supported).", f"{where}[{j}]")
            image = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        else:
            raise invalid(f"'{where}[{j}].type' {kind!r} is not supported on this route.", f"{where}[{j}].type")
    if all(p["type"] == "text" for p in out):
        return "\n\n".join(p["text"] for p in out)
    return out


def _upstream_name(item: dict[str, Any]) -> str:
    namespace = item.get("namespace")
    return f"{namespace}{NAMESPACE_JOIN}{item['name']}" if isinstance(namespace, str) and namespace else item["name"]


def _tool_output(output: Any) -> str:
    return output if isinstance(output, str) else _text_of([p for p in output if isinstance(p, dict)])


def chat_messages(instructions: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses items as chat messages: function calls join the assistant turn before them, their
    outputs become `tool` messages, reasoning items are dropped (a chat route cannot take them back)."""
    out: list[dict[str, Any]] = []
    if instructions:
        out.append({"role": "system", "content": instructions})
    for i, item in enumerate(items):
        kind = item["type"]
        if kind == "message":
            role = ROLES[item["role"]]
            if role == "assistant":
                out.append({"role": "assistant", "content": _text_of(item["content"])})
            else:
                out.append({"role": role, "content": _user_content(item["content"], f"input[{i}].content")})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": _upstream_name(item), "arguments": item["arguments"]},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                last["content"] = last.get("content") or None
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": _tool_output(item["output"])})
    if not out or all(m["role"] == "system" for m in out):
        raise invalid("'input' holds nothing a model can answer: add a user message.", "input")
    return out


def _function(tool: dict[str, Any], where: str, name: str) -> dict[str, Any]:
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        raise invalid(f"'{where}.name' is required.", f"{where}.name")
    function: dict[str, Any] = {"name": name}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def chat_tools(tools: Any) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
    """Function tools (and the functions of a `namespace`) as chat tools; a built-in tool is a 400 naming it."""
    if not isinstance(tools, list):
        raise invalid("'tools' must be an array.", "tools")
    out, namespaced = [], {}
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            out.append(_function(tool, where, tool.get("name")))
        elif kind == "namespace" and isinstance(tool.get("name"), str) and isinstance(tool.get("tools"), list):
            for j, inner in enumerate(tool["tools"]):
                at = f"{where}.tools[{j}]"
                if not isinstance(inner, dict) or inner.get("type") != "function":
                    raise invalid(f"'{at}' must be a function tool.", at)
                name = f"{tool['name']}{NAMESPACE_JOIN}{inner.get('name')}"
                out.append(_function(inner, at, name))
                namespaced[name] = (tool["name"], inner["name"])
        else:
            raise invalid(
                f"'{where}' is the built-in tool {kind!r}, which only a native Responses route runs; this "
                "model's routes take function tools only.",
                where,
            )
    return out, namespaced


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if (
        isinstance(choice, dict)
        and choice.get("type") == "allowed_tools"
        and choice.get("mode") in ("auto", "required")
    ):
        return choice["mode"]
    raise invalid(
        '\'tool_choice\' must be auto, none, required or a function ({"type": "function", "name"}).', "tool_choice"
    )


def _response_format(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, dict):
        raise invalid("'text' must be an object.", "text")
    fmt = text.get("format")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        schema = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
        for name in ("strict", "description"):
            if fmt.get(name) is not None:
                schema[name] = fmt[name]
        return {"type": "json_schema", "json_schema": schema}
    raise invalid("'text.format' must be text, json_object or json_schema with a 'schema'.", "text.format")


def _check(body: dict[str, Any]) -> None:
    for name, kind, what in (
        ("instructions", str, "a string"),
        ("previous_response_id", str, "a string"),
        ("store", bool, "a boolean"),
        ("parallel_tool_calls", bool, "a boolean"),
        ("metadata", dict, "an object"),
        ("include", list, "an array"),
        ("reasoning", dict, "an object"),
        ("user", str, "a string"),
        ("prompt_cache_key", str, "a string"),
        ("client_metadata", dict, "an object"),
    ):
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise invalid(f"'{name}' must be {what}.", name)


def chat_body_of(
    body: dict[str, Any], items: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """The chat completion body a Responses body (with `items` as its whole input) translates to."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("'model' is required.", "model")
    _check(body)
    out: dict[str, Any] = {"model": body["model"], "messages": chat_messages(body.get("instructions"), items)}
    out.update((name, value) for name, value in body.items() if name not in RESPONSES_FIELDS)
    for name in (
        "models",
        "provider",
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "user",
        "prompt_cache_key",
        "stream",
    ):
        if body.get(name) is not None:
            out[name] = body[name]
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not chat._is_int(limit) or not 1 <= limit <= chat.MAX_TOKENS_LIMIT:
            raise invalid(
                f"'max_output_tokens' must be an integer between 1 and {chat.MAX_TOKENS_LIMIT}.", "max_output_tokens"
            )
        out["max_tokens"] = limit
    namespaced: dict[str, tuple[str, str]] = {}
    if body.get("tools"):
        out["tools"], namespaced = chat_tools(body["tools"])
    if body.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("text") is not None and (fmt := _response_format(body["text"])) is not None:
        out["response_format"] = fmt
    effort = (body.get("reasoning") or {}).get("effort")
    if isinstance(effort, str):
        out["reasoning_effort"] = effort
    return out, namespaced


def _routing_body(body: dict[str, Any]) -> dict[str, Any]:
    """What the pipeline reads of a body that only a native route can take."""
    out = {name: body[name] for name in ("model", "models", "provider", "stream") if name in body}
    limit = body.get("max_output_tokens")
    if chat._is_int(limit) and 1 <= limit <= chat.MAX_TOKENS_LIMIT:
        out["max_tokens"] = limit
    return {**out, "messages": [{"role": "user", "content": ""}]}


def _request(
    body: dict[str, Any], raw_size: int, items: list, context: list, untranslatable: ApiError | None = None
) -> ResponsesRequest:
    for name, why in REFUSED.items():  # on every route: they name state kept at the provider
        if body.get(name):
            raise invalid(f"'{name}': {why}.", name)
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):  # on every route: it names our stored state
        raise invalid("'previous_response_id' must be a string.", "previous_response_id")
    namespaced: dict[str, tuple[str, str]] = {}
    if untranslatable is None:
        try:
            translated, namespaced = chat_body_of(body, context + items)
        except ApiError as error:
            if not isinstance(body.get("model"), str) or not body["model"]:
                raise
            # What a native route could still take: the request goes on, and only translated routes refuse it.
            untranslatable = error
    if untranslatable is not None:
        translated = _routing_body(body)
    parsed = chat.parse_chat_request(chat._forward_json(translated))
    values = {f.name: getattr(parsed, f.name) for f in fields(parsed)}
    values["raw_size"] = raw_size
    return ResponsesRequest(
        **values,
        responses=body,
        items=items,
        context=context,
        previous_response_id=body.get("previous_response_id"),
        store=body.get("store") is not False,
        namespaced=namespaced,
        untranslatable=untranslatable,
    )


def _input_items(value: Any) -> tuple[list[dict[str, Any]], ApiError | None]:
    """The input items, and why chat cannot say them (an item of a type only the Responses API has)."""
    try:
        return _items(value), None
    except ApiError as error:
        if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
            raise
        return [dict(item) for item in value], error


def parse_responses_request(raw: bytes) -> ResponsesRequest:
    """Validate a Responses body and translate it; fields without a chat counterpart are kept for the answer."""
    body = chat._json_load(raw)
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    items, untranslatable = _input_items(body.get("input"))
    return _request(body, len(raw), items, [], untranslatable)


def bind(request: ResponsesRequest, principal: KeyPrincipal) -> ResponsesRequest:
    """With `previous_response_id`: the request with the stored conversation (the caller's account's only)
    before its own input; its size (and so its hold) counts the conversation too."""
    if not request.previous_response_id:
        return request
    from ..relay import settlements_wait_for  # imported here: relay imports the surfaces
    from ..stored_responses import response_conversation

    # A plain answer is stored right after its charge: a client continuing on the same connection at once
    # finds it, as its reads of the charge do.
    settlements_wait_for(principal.account_id)
    context = response_conversation(request.previous_response_id, principal.account_id)
    if context is None:
        raise ApiError(
            404,
            f"Response '{request.previous_response_id}' not found.",
            code="not_found",
            param="previous_response_id",
        )
    size = request.raw_size + len(json.dumps(context, ensure_ascii=False).encode())
    untranslatable = request.untranslatable
    return _request(request.responses, size, request.items, context, untranslatable)


def upstream_body(request: ResponsesRequest, route: Any) -> bytes:
    """The chat completion body an OpenAI-compatible route is sent (a native route gets the client's own)."""
    if request.untranslatable is not None:
        raise request.untranslatable
    return chat.upstream_body(request, route)


# --- The answer -----------------------------------------------------------------------------------------


def usage_out(started: Started, finished: Finished, upstream_usage: Any) -> dict[str, Any]:
    """Responses' usage from our charged counts, the upstream's reasoning tokens, and the exact cost."""
    usage = finished.usage
    details = upstream_usage.get("completion_tokens_details") if isinstance(upstream_usage, dict) else None
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else 0
    if finished.usage_source != "upstream" or not chat._is_int(reasoning) or reasoning < 0:
        reasoning = 0
    out = {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": min(reasoning, usage.completion_tokens)},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "cost": finished.cost,
    }
    price = started.price
    if finished.breakdown is not None and (price.cached_prompt is not None or price.request):
        b = finished.breakdown
        out["cost_details"] = {
            "prompt": b.prompt,
            "cached_prompt": b.cached_prompt,
            "completion": b.completion,
            "request": b.request,
        }
    return out


def response_object(
    started: Started,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    finish_reason: str = "",
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `response` object: our id and model, the request's settings echoed, the output and usage."""
    request: ResponsesRequest = started.request
    body = request.responses
    reasoning = body.get("reasoning") or {}
    incomplete = INCOMPLETE.get(finish_reason) if status == "incomplete" else None
    return {
        "id": started.generation_id,
        "object": "response",
        "created_at": int(started.started_at.timestamp()),
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": started.entry.public_id,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "previous_response_id": request.previous_response_id,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": request.store,
        "temperature": body.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": usage,
        "user": body.get("user"),
    }


def _status(finish_reason: str) -> str:
    return "incomplete" if finish_reason in INCOMPLETE else "completed"


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def reasoning_item(item_id: str, summary: str | None) -> dict[str, Any]:
    """Reasoning as a `reasoning` item: the chat answer's reasoning text is its summary (None: still empty)."""
    parts = [] if summary is None else [{"type": "summary_text", "text": summary}]
    return {"id": item_id, "type": "reasoning", "summary": parts}


def call_item(request: ResponsesRequest, item_id: str, call: dict[str, Any], status: str) -> dict[str, Any]:
    """A chat tool call as a `function_call` item (a namespaced function under its own name and namespace)."""
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    name = str(function.get("name") or "")
    item = {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": str(call.get("id") or item_id),
        "name": name,
        "arguments": str(function.get("arguments") or ""),
    }
    if name in request.namespaced:
        item["namespace"], item["name"] = request.namespaced[name]
    return item


def plain_answer(body: dict[str, Any], started: Started, finished: Finished) -> bytes:
    """The upstream's chat completion as a `response` object, with our id and the exact cost."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    reason = str(choice.get("finish_reason") or "")
    status = _status(reason)
    item_status = "incomplete" if status == "incomplete" else "completed"
    output: list[dict[str, Any]] = []
    thinking = chat.reasoning_of(message)
    if thinking:
        output.append(reasoning_item(f"rs_{started.generation_id}", thinking))
    if isinstance(message.get("content"), str) and message["content"]:
        output.append(message_item(f"msg_{started.generation_id}", message["content"], item_status))
    for i, call in enumerate(message.get("tool_calls") or ()):
        if isinstance(call, dict):
            output.append(call_item(started.request, f"fc_{started.generation_id}_{i}", call, item_status))
    answer = response_object(
        started,
        status=status,
        output=output,
        usage=usage_out(started, finished, body.get("usage")),
        finish_reason=reason,
    )
    started.request.answer = answer
    return exactjson.dumps_bytes(answer)


def settled(started: Started, finished: Finished) -> None:
    """A plain answer's charge is written: keep the response when the client asked to store it."""
    answer = started.request.answer
    if started.request.store and answer is not None:
        from ..stored_responses import response_store

        response_store(started, answer)


# The events every stream repeats, rendered once (events.py): its beginning, a message item's start and end
# around its text, and each fragment's delta (its item's id and index fixed per item; the fragment's JSON
# string and the sequence number put in).
_BEGUN = (
    b'event: response.created\ndata: {"type":"response.created","response":%s,"sequence_number":0}\n\n'
    b'event: response.in_progress\ndata: {"type":"response.in_progress","response":%s,"sequence_number":1}\n\n'
)
_MESSAGE_ADDED = (
    b'event: response.output_item.added\ndata: {"type":"response.output_item.added","output_index":%(index)d,'
    b'"item":{"id":%(id)s,"type":"message","status":"in_progress","role":"assistant","content":[]},'
    b'"sequence_number":%(seq)d}\n\n'
    b'event: response.content_part.added\ndata: {"type":"response.content_part.added","item_id":%(id)s,'
    b'"output_index":%(index)d,"content_index":0,"part":{"type":"output_text","text":"","annotations":[],'
    b'"logprobs":[]},"sequence_number":%(seq1)d}\n\n'
)
_MESSAGE_DONE = (
    b'event: response.output_text.done\ndata: {"type":"response.output_text.done","item_id":%(id)s,'
    b'"output_index":%(index)d,"content_index":0,"text":%(text)s,"logprobs":[],"sequence_number":%(seq)d}\n\n'
    b'event: response.content_part.done\ndata: {"type":"response.content_part.done","item_id":%(id)s,'
    b'"output_index":%(index)d,"content_index":0,"part":{"type":"output_text","text":%(text)s,"annotations":[],'
    b'"logprobs":[]},"sequence_number":%(seq1)d}\n\n'
    b'event: response.output_item.done\ndata: {"type":"response.output_item.done","output_index":%(index)d,'
    b'"item":{"id":%(id)s,"type":"message","status":%(status)s,"role":"assistant","content":[{"type":"output_text",'
    b'"text":%(text)s,"annotations":[],"logprobs":[]}]},"sequence_number":%(seq2)d}\n\n'
)
_TEXT_DELTA = (
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":%s,'
    b'"output_index":%d,"content_index":0,"delta":'
)
_ARGUMENTS_DELTA = (
    b'event: response.function_call_arguments.delta\ndata: {"type":"response.function_call_arguments.delta",'
    b'"item_id":%s,"output_index":%d,"delta":'
)
_SUMMARY_DELTA = (
    b'event: response.reasoning_summary_text.delta\ndata: {"type":"response.reasoning_summary_text.delta",'
    b'"item_id":%s,"output_index":%d,"summary_index":0,"delta":'
)
_TEXT_DELTA_END = b',"logprobs":[],"sequence_number":%d}\n\n'
_DELTA_END = b',"sequence_number":%d}\n\n'


class EventWriter:
    """Chat chunks into Responses' typed events; keeps the open output item and the sequence number."""

    def __init__(self, started: Started) -> None:
        self.started = started
        self.sequence = 0
        self.began = False
        self.output: list[dict[str, Any]] = []  # every output item so far, the open one last
        self.open: str | None = None  # "reasoning", "text" or a tool call's upstream index ("tool:N")
        self.pieces: list[str] = []  # the open item's text or arguments so far
        self.delta = b""  # the open item's delta event, up to its fragment

    def event(self, kind: str, data: dict[str, Any]) -> bytes:
        """An event numbered in sequence; its payload holds no money (the final event is written with exact())."""
        payload = {"type": kind, **data, "sequence_number": self.sequence}
        self.sequence += 1
        return events.named(kind, events.json_bytes(payload))

    def exact(self, kind: str, data: dict[str, Any]) -> bytes:
        """An event numbered in sequence whose payload carries money: its Decimals as exact numbers."""
        payload = {"type": kind, **data, "sequence_number": self.sequence}
        self.sequence += 1
        return events.exact(kind, payload)

    def _begin(self) -> bytes:
        if self.began:
            return b""
        self.began = True
        response = events.json_bytes(response_object(self.started, status="in_progress", output=[], usage=None))
        self.sequence = 2
        return _BEGUN % (response, response)

    def _item_id(self, prefix: str) -> str:
        """A new item's id: `<prefix>_<generation id>`, numbered by its place when an item already has it."""
        item_id = f"{prefix}_{self.started.generation_id}"
        return f"{item_id}_{len(self.output)}" if any(o["id"] == item_id for o in self.output) else item_id

    def _added(self, item: dict[str, Any], delta: bytes) -> bytes:
        """A new output item: kept in `output`, its delta event prepared; a message's added events."""
        self.output.append(item)
        self.pieces = []
        index, item_id = len(self.output) - 1, events.json_string(item["id"])
        self.delta = delta % (item_id, index)
        if item["type"] == "message":
            self.sequence += 2
            return _MESSAGE_ADDED % {
                b"index": index,
                b"id": item_id,
                b"seq": self.sequence - 2,
                b"seq1": self.sequence - 1,
            }
        return self.event("response.output_item.added", {"output_index": index, "item": item})

    def _fragment(self, fragment: str, end: bytes) -> bytes:
        self.pieces.append(fragment)
        self.sequence += 1
        return self.delta + events.json_string(fragment) + end % (self.sequence - 1)

    def _close(self, status: str = "completed") -> bytes:
        """The open item's done events, its final form kept in `output`."""
        if self.open is None:
            return b""
        index = len(self.output) - 1
        item = self.output[index]
        whole = "".join(self.pieces)
        self.open = None
        if item["type"] == "message":
            self.output[index] = message_item(item["id"], whole, status)
            self.sequence += 3
            return _MESSAGE_DONE % {
                b"id": events.json_string(item["id"]),
                b"index": index,
                b"text": events.json_string(whole),
                b"status": events.json_string(status),
                b"seq": self.sequence - 3,
                b"seq1": self.sequence - 2,
                b"seq2": self.sequence - 1,
            }
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "reasoning":
            done = self.output[index] = reasoning_item(item["id"], whole)
            summary = {**where, "summary_index": 0}
            out = self.event("response.reasoning_summary_text.done", {**summary, "text": whole})
            out += self.event("response.reasoning_summary_part.done", {**summary, "part": done["summary"][0]})
            return out + self.event("response.output_item.done", {"output_index": index, "item": done})
        done = self.output[index] = {**item, "arguments": whole, "status": status}
        out = self.event("response.function_call_arguments.done", {**where, "name": done["name"], "arguments": whole})
        return out + self.event("response.output_item.done", {"output_index": index, "item": done})

    def apply(self, data: bytes, chunk: dict) -> bytes:
        out = self._begin() if not self.began else b""
        choices = chunk.get("choices") or ()
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        thinking = chat.reasoning_of(delta)
        if thinking:
            if self.open != "reasoning":
                out += self._close()
                self.open = "reasoning"
                item = reasoning_item(self._item_id("rs"), None)
                out += self._added(item, _SUMMARY_DELTA)
                part = {"item_id": item["id"], "output_index": len(self.output) - 1, "summary_index": 0}
                out += self.event(
                    "response.reasoning_summary_part.added", {**part, "part": {"type": "summary_text", "text": ""}}
                )
            out += self._fragment(thinking, _DELTA_END)
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.open != "text":
                out += self._close()
                self.open = "text"
                item = {
                    "id": self._item_id("msg"),
                    "type": "message",
                    "status": "in_progress",
                    "role": "assistant",
                    "content": [],
                }
                out += self._added(item, _TEXT_DELTA)
            out += self._fragment(text, _TEXT_DELTA_END)
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            at = call.get("index", 0)
            if f"tool:{at}" != self.open:
                out += self._close()
                self.open = f"tool:{at}"
                header = {**call, "function": {**(call.get("function") or {}), "arguments": ""}}
                item = call_item(self.started.request, f"fc_{self.started.generation_id}_{at}", header, "in_progress")
                out += self._added(item, _ARGUMENTS_DELTA)
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str) and arguments:
                out += self._fragment(arguments, _DELTA_END)
        return out


def stream_rewriter(first: dict, started: Started) -> EventWriter:
    return EventWriter(started)


def stream_event(data: bytes) -> bytes:
    return data  # the writer frames its own events (several per chunk, with `event:` lines)


def stream_final(started: Started, end: StreamEnd) -> bytes:
    """The held-back chunk's content, the open item's end, then the final event carrying the response with
    our usage and exact cost: `response.completed`, `response.incomplete` (length), or `response.failed`
    (the upstream broke off, or settling failed: then without usage)."""
    writer = end.rewrite if isinstance(end.rewrite, EventWriter) else EventWriter(started)
    out = writer.apply(end.last, end.last_chunk) if end.last_chunk is not None else writer._begin()
    choices = (end.last_chunk or {}).get("choices") or [{}]
    reason = str((choices[0] if isinstance(choices[0], dict) else {}).get("finish_reason") or "")
    failed = end.finished is None or bool(end.error)
    status = "failed" if failed else _status(reason)
    out += writer._close("completed" if status == "completed" else "incomplete")
    usage = usage_out(started, end.finished, end.usage) if end.finished is not None else None
    error = {"code": "server_error", "message": f"Stream interrupted: {end.error or 'settling failed'}."}
    response = response_object(
        started, status=status, output=writer.output, usage=usage, finish_reason=reason, error=error if failed else None
    )
    if end.finished is not None and started.request.store:
        store_quietly(started, response)
    kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(status, "response.failed")
    return out + writer.exact(kind, {"response": response})


def store_quietly(started: Started, response: dict[str, Any]) -> None:
    """Keep a settled stream's response; a failure to keep it is logged, the charge stands."""
    from core.db import release_db

    from ..stored_responses import response_store

    try:
        response_store(started, response)
    except Exception:
        log.exception("keeping response %s failed; it was charged and answered", started.generation_id)
    finally:
        release_db()


def stream_error(message: str) -> bytes:
    return b""  # stream_final already wrote `response.failed` with the error (it numbers the events)


# The body as parse_responses_request checks it; any other field is forwarded as sent.
REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string", "minLength": 1, "description": "A model id from GET /v1/models."},
        "input": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "Messages, `function_call`, `function_call_output` and reasoning items.",
                },
            ]
        },
        "instructions": {"type": "string", "nullable": True},
        "previous_response_id": {"type": "string", "nullable": True},
        "store": {"type": "boolean", "nullable": True},
        "stream": {"type": "boolean", "nullable": True},
        "tools": {"type": "array", "items": {"type": "object", "required": ["type"]}, "nullable": True},
        "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}], "nullable": True},
        "text": {"type": "object", "nullable": True},
        "reasoning": {"type": "object", "nullable": True},
        "max_output_tokens": {"type": "integer", "minimum": 1, "nullable": True},
        "metadata": {"type": "object", "nullable": True},
        "user": {"type": "string", "nullable": True},
    },
    "additionalProperties": True,
}

OPENAPI = openapi_operation(
    request=REQUEST_SCHEMA,
    operation_id="responses_create",
    summary="Create a model response (OpenAI Responses API)",
    description="OpenAI Responses-compatible: passed through to the model's routes that speak the Responses API "
    "(reasoning items, `include`, built-in tools reach the provider), translated onto its OpenAI-compatible ones: "
    "`input` as a string or items (messages, `function_call`, `function_call_output`; reasoning items are dropped), "
    "`instructions`, function `tools` (built-in tools need a native route), `tool_choice`, `text.format`, "
    "`reasoning.effort`, "
    "`max_output_tokens`. `store` (default true) keeps the response for `previous_response_id` and "
    "`GET /v1/responses/{id}`. `usage.cost` is what was charged (USD). With `stream: true` the answer is the typed "
    "event stream; the final `response.completed` (or `.incomplete`, `.failed`) carries `usage.cost`.",
    tag="responses",
    answer="The response (or its event stream).",
    streams=True,
)


SURFACE = Surface(
    name="responses",
    path="responses",
    speaks="openai-chat",
    openapi=OPENAPI,
    parse=parse_responses_request,
    upstream_body=upstream_body,
    plain_answer=plain_answer,
    stream_rewriter=stream_rewriter,
    stream_event=stream_event,
    stream_final=stream_final,
    stream_error=stream_error,
    stream_end=b"",
    bind=bind,
    settled=settled,
    native="openai-responses",
)
