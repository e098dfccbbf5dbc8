"""What an API surface is: one wire format clients speak, served at one /v1 path.

The pipeline (completions/pipeline.py) runs the same steps for every surface: read the body, let the
surface parse it, authenticate, rate-limit, find the model's routes, hold the worst case, call each
route in the API it speaks (completions/upstreams/), relay the answer and settle. What differs
per surface is only what is here: how a request is read, what goes upstream, and how the upstream's
answer and its exact cost are written back for the client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from completions.errors import ERROR_SCHEMA

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.principals import KeyPrincipal
    from completions.errors import ApiError
    from completions.preferences import ProviderPreferences
    from completions.routing import RouteInfo
    from completions.settlement import Finished, Started


class SurfaceRequest(Protocol):
    """What the pipeline and settlement read from a parsed request, whatever its surface."""

    model: str  # the first of `models`
    models: tuple[str, ...]  # the models to try, in order
    provider: ProviderPreferences
    stream: bool
    max_tokens: int | None
    n: int
    user: str
    wants_usage: bool
    raw_size: int

    @property
    def prompt_tokens_upper_bound(self) -> int: ...

    @property
    def prompt_tokens_estimate(self) -> int: ...

    @property
    def parameters(self) -> frozenset[str]: ...  # what `provider.require_parameters` asks routes to take


class ChunkRewriter(Protocol):
    """Turns one upstream stream chunk (its bytes and its parsed form) into the client's event payload.

    A rewriter may also have `apply_bytes(data) -> bytes | None`, for a middle chunk the relay did not
    parse (`completions/chat_chunks.py`); None there sends the chunk through `apply` after all.
    """

    def apply(self, data: bytes, chunk: dict) -> bytes: ...


@dataclass(slots=True)
class StreamEnd:
    """How a stream ended, handed to `Surface.stream_final` once the reader has settled it.

    The relay holds back the upstream's chunk that finished the answer (the one with a `finish_reason`,
    and any chunk with choices after it) until the stream is settled, so that the surface can write the
    answer's end together with its cost.
    """

    last: bytes | None  # the held-back chunk's payload as the upstream sent it; None if none finished
    last_chunk: dict | None  # the same, parsed
    rewrite: ChunkRewriter | None  # built from the stream's first chunk with choices (None: there was none)
    usage_chunk: dict | None  # the upstream's own usage chunk (no choices), if it sent one
    usage: Any  # the usage the upstream reported, if any
    finished: Finished | None  # what was charged; None when settling failed (an error event follows)
    created: int  # when the relay began (for a chunk the surface writes itself)
    error: str | None = None  # why the stream failed, if it did (stream_error's event follows)


@dataclass(frozen=True, slots=True)
class Surface:
    """One API surface. Registered in completions/surfaces/__init__.py, which is all routing needs."""

    name: str
    path: str  # served at /v1/<path> (POST)
    # The form its requests are written in for translated routes: an upstream kind's API (completions/upstreams/).
    speaks: str
    openapi: dict[str, Any]  # the OpenAPI path item (the view is plain Django, not DRF)
    parse: Callable[[bytes], SurfaceRequest]  # raises ApiError (400) on a malformed body
    upstream_body: Callable[[Any, RouteInfo], bytes]  # (request, a route) -> the body that route is sent
    plain_answer: Callable[[dict, Started, Finished], bytes]  # the upstream's JSON answer, ours, with cost
    stream_rewriter: Callable[[dict, Started], ChunkRewriter]  # built from the first chunk with choices
    stream_event: Callable[[bytes], bytes]  # one event's framing
    stream_final: Callable[[Started, StreamEnd], bytes]  # the last events: the held-back chunk, usage and cost
    stream_error: Callable[[str], bytes]  # a failure after the stream began
    stream_end: bytes  # the terminator
    # Written while the upstream is silent (STREAM_KEEPALIVE_SECONDS), so that proxies keep the stream open.
    stream_keepalive: bytes = b": keepalive\n\n"
    # How an error is written: (status, body); None is OpenAI's shape (completions/errors.py).
    error_body: Callable[[ApiError], tuple[int, dict[str, Any]]] | None = None
    # The `Authorization` header value the key is read from; None reads `Authorization` itself.
    authorization: Callable[[HttpRequest], str] | None = None
    # Completes the parsed request once the caller is known (Responses' `previous_response_id`: the caller's
    # stored conversation); returns the request to serve. None: the parsed request is served as it is.
    bind: Callable[[Any, KeyPrincipal], SurfaceRequest] | None = None
    # Called once a plain answer's charge is committed, outside its transaction (Responses keeps the answer).
    settled: Callable[[Started, Finished], None] | None = None
    # The upstream kind whose API is this surface's own: its routes get the request untouched (no translation).
    native: str | None = None


_OBJECT = {"type": "object", "additionalProperties": {}}
# The errors every POST surface can answer, as OpenAI's shape names them (a surface may pass its own).
OPENAI_ERRORS = (
    ("400", "invalid_request (`param` names the field), invalid_host, or upstream_invalid_request"),
    ("401", "invalid_api_key"),
    ("402", "insufficient_funds"),
    ("403", "account_suspended or key_spend_limit"),
    ("404", "model_not_found, no_route, or upstream_invalid_request"),
    ("408", "request_timeout: the body did not arrive in time"),
    ("413", "request_too_large, or upstream_invalid_request"),
    ("415", "unsupported_media_type: the body is not sent as application/json"),
    ("422", "upstream_invalid_request"),
    ("429", "rate_limit"),
    ("502", "upstream_error"),
    ("503", "upstream_unavailable or upstream_rate_limited"),
    ("504", "upstream_timeout"),
)


def openapi_operation(
    *,
    operation_id: str,
    summary: str,
    description: str,
    tag: str,
    answer: str,
    streams: bool,
    request: dict[str, Any],
    answer_schema: dict[str, Any] = _OBJECT,
    errors: tuple[tuple[str, str], ...] = OPENAI_ERRORS,
    error_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A surface's OpenAPI path item: a keyed POST with a JSON body (`request`, its schema), its answer
    (JSON, or an event stream too when it `streams`) and its error statuses, in OpenAI's shape unless
    `error_schema` says."""
    content: dict[str, Any] = {"application/json": {"schema": answer_schema}}
    if streams:
        # One server-sent event: its data alone (chat completions), or with its name (Messages, Responses).
        event = {"type": "object", "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}
        content["text/event-stream"] = {"schema": {"anyOf": [{"type": "string"}, event]}}
    error = {"content": {"application/json": {"schema": error_schema or ERROR_SCHEMA}}}
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "tags": [tag],
            "security": [{"ApiKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
            "responses": {
                "200": {"description": answer, "content": content},
                **{status: {"description": why, **error} for status, why in errors},
            },
        }
    }
