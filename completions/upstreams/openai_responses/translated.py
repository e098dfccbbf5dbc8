"""The `openai-responses` kind translated: a chat completion body as a Responses body, a `response` object as
a chat completion, Responses' typed events as chat chunks (the tables are the docs page "Responses (OpenAI)")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...chat_chunks import translated_chunk
from ..sse import data_frames

if TYPE_CHECKING:
    import urllib3


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


def chat_events(response: urllib3.BaseHTTPResponse, quiet_s: float | None = None) -> Iterator[bytes]:
    """A Responses event stream as chat chunk payloads (then `[DONE]`), for the relay's translated path;
    b"" each time the provider was silent for `quiet_s` seconds."""
    head: dict[str, Any] = {"id": "", "object": "chat.completion.chunk", "created": 0, "model": ""}
    tools: dict[int, int] = {}  # output index -> tool call index

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return translated_chunk(head, delta, finish)

    for data in data_frames(response, quiet_s):
        if not data:
            yield b""
            continue
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
            head["created"] = snapshot.get("created_at") or 0
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
