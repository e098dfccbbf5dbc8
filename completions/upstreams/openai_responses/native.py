"""The `openai-responses` kind natively: the Responses surface's own body sent on, the provider's answer and
events handed back with our id, model name and exact cost."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from core import exactjson

from ..base import Passthrough, PlainRead
from ..event_shapes import EventShape, checked_shape, plain_chars
from ..sse import frame_batches, frame_data
from .translated import chat_usage

if TYPE_CHECKING:
    from django.http import HttpRequest

    from completions.routing import RouteInfo
    from completions.settlement import Finished, Started

# Our own request fields, which the provider must not see.
OURS = ("models", "provider")
FORWARDED_HEADERS = (("HTTP_OPENAI_BETA", "openai-beta"),)
# The events that end an answer: held back until it is settled, then sent with our usage and cost.
FINAL = ("response.completed", "response.incomplete")
# A delta event read as bytes once its shape is learned (completions/upstreams/event_shapes.py): its counted
# text, its sequence number, OpenAI's random-length `obfuscation` padding and the item's id (which differs
# from stream to stream, the rest of the shape does not) are the values that change.
_DELTA_KEYS = (b'"delta":"', b'"sequence_number":', b'"obfuscation":"', b'"item_id":"')
_SHAPE_LEARNS = 4


# --- The request ----------------------------------------------------------------------------------------


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
    if isinstance(body.get("input"), list) and any(_ours_only(item) for item in body["input"]):
        body["input"] = [item for item in body["input"] if not _ours_only(item)]
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _ours_only(item: Any) -> bool:
    """A reasoning item we wrote on a translated route (`rs_gen-…`, no `encrypted_content`): the provider has
    no such item stored and nothing to decrypt, and would refuse the request, so it is not sent. The thought
    was only a summary; a conversation may move from a translated route to a native one between turns."""
    return (
        isinstance(item, dict)
        and item.get("type") == "reasoning"
        and str(item.get("id") or "").startswith("rs_gen-")
        and not item.get("encrypted_content")
    )


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
    from ...surfaces.responses import usage_out  # imported here: the surface declares this kind native

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
    return exactjson.dumps_bytes(answer)


def _frame(data: dict[str, Any]) -> bytes:
    return b"event: " + str(data.get("type")).encode() + b"\ndata: " + exactjson.dumps_bytes(data) + b"\n\n"


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
        # The fast path: a delta event with the bytes of the last one around its values, read as bytes.
        self.shape: EventShape | None = None
        self.learns = 0  # shapes learned since one was last of use: a stream whose deltas all differ stops

    def _response(self, data: dict[str, Any]) -> dict[str, Any]:
        response = data.get("response") if isinstance(data.get("response"), dict) else {}
        self.snapshot = response
        self.upstream_id = self.upstream_id or str(response.get("id") or "")
        return response

    def feed(self, frame: bytes) -> tuple[bytes, int]:
        return self.fast(frame) or self._parsed(frame)

    def fast(self, frame: bytes) -> tuple[bytes, int] | None:
        shape = self.shape
        if shape is not None:
            values = shape.match(frame)
            if values is not None:
                self.learns = 0
                if values[1]:
                    self.sequence = int(values[1])
                return frame + b"\n\n", plain_chars(values[0])
        return None

    def in_middle(self) -> bool:
        return self.shape is not None and not self.learns and self.held is None and not self.done and not self.error

    def _parsed(self, frame: bytes) -> tuple[bytes, int]:
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
            if isinstance(data.get("delta"), str) and self.learns < _SHAPE_LEARNS:
                self.learns += 1
                self.shape = checked_shape("openai-responses", frame, _DELTA_KEYS, self._agrees) or self.shape
            return frame + b"\n\n", _generated(data.get("delta"))
        return frame + b"\n\n", 0

    def _agrees(self, frame: bytes, values: list[bytes]) -> bool:
        """Whether the long way relays `frame` as it came, counting the characters of its `delta`, `values[0]`,
        and keeping its sequence number, `values[1]` (none: the last one stays)."""
        probe = NativeEvents(self.started)
        probe.learns = _SHAPE_LEARNS
        sequence = int(values[1]) if values[1] else probe.sequence
        return probe._parsed(frame) == (frame + b"\n\n", plain_chars(values[0])) and probe.sequence == sequence

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
            from ...surfaces.responses import store_quietly

            store_quietly(started, response)
        return _frame({**event, "response": response})


PASSTHROUGH = Passthrough(
    body=native_body,
    headers=native_headers,
    read=native_read,
    answer=native_answer,
    events=frame_batches,
    stream=NativeEvents,
    pumped=True,
)
