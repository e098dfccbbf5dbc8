"""What an upstream kind is: one API a provider speaks, and how the router calls and reads it.

Each route names the kind its provider speaks (`Route.api`). A request is sent to a route either
natively, when the route's kind is the surface's own API (`Surface.native`: the client's body goes
through untouched but for the model name, and the kind's `Passthrough` relays the answer), or
translated: the surface writes its request in the form it `speaks` (today `openai-chat` or
`openai-embeddings`), and the kind turns that into its own API and its answers back (`accepts`,
`translate`, `plain`, `events`). A route whose kind can do neither for the surface is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import urllib3
    from django.http import HttpRequest

    from completions.candidates import Candidate
    from completions.routing import RouteInfo
    from completions.settlement import Finished, Started


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One candidate's request: the kind its route speaks, the body, and the client's headers passed on
    (native routes only)."""

    upstream: Upstream
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class UpstreamCall:
    """An upstream response that answered 2xx, still unread, and the candidate (model and route) that gave it.

    `passthrough` is set when the route speaks the surface's own API: the relay then hands the answer on
    through it instead of reading it in the translated form.
    """

    candidate: Candidate
    response: urllib3.BaseHTTPResponse
    upstream: Upstream  # the kind it was called in
    passthrough: Passthrough | None = None

    @property
    def route(self) -> RouteInfo:
        return self.candidate.route


@dataclass(frozen=True, slots=True)
class PlainRead:
    """What settlement needs from a native plain answer."""

    usage: dict[str, Any] | None  # in Chat Completions' terms (settlement reads those)
    completion_chars: int
    finish_reason: str
    upstream_id: str


class NativeStream(Protocol):
    """One native stream, event by event: what is relayed at once, what waits for the cost."""

    usage: dict[str, Any] | None  # in Chat Completions' terms, as far as the events told
    finish_reason: str
    upstream_id: str
    error: str  # set by an error event: the stream failed
    done: bool  # the answer's last event arrived

    def feed(self, event: bytes) -> tuple[bytes, int]:
        """One upstream event (its whole SSE frame) -> (the bytes to relay now, characters it generated)."""
        ...

    def fast(self, event: bytes) -> tuple[bytes, int] | None:
        """`feed` for a middle event of the learned shape, read from its bytes; None (nothing counted) for any other.
        Feeding the same events again, in order, leaves the stream as one feed of them does."""
        ...

    def in_middle(self) -> bool:
        """Whether the stream is between its start and its end with a learned shape of use (the stream pump's
        turn, completions/pump.py)."""
        ...

    def final(self, finished: Finished | None, error: str) -> bytes:
        """The held-back end of the answer with our usage and cost (`finished` None: settling failed; `error`:
        why the stream failed, if it did; then the surface's error event follows)."""
        ...


@dataclass(frozen=True, slots=True)
class Passthrough:
    """How a kind hands its own API's answers to a surface that speaks the same API, with our cost added."""

    body: Callable[[Any, RouteInfo], bytes]  # (the parsed request, the route) -> the client's body, our model name
    headers: Callable[[HttpRequest], dict[str, str]]  # the client's headers the provider should see
    read: Callable[[dict], PlainRead]  # a plain answer, for settlement
    answer: Callable[[dict, Started, Finished], bytes]  # a plain answer, ours: our id, model and exact cost
    # A stream's events, whole frames, a list per network read; an empty list each time the provider was silent
    # for the given seconds (keep-alive).
    events: Callable[[urllib3.BaseHTTPResponse, float | None], Iterator[list[bytes]]]
    stream: Callable[[Started], NativeStream]  # a new stream's reader
    # Whether the provider's raw stream is the frames `events` reads, so that the stream pump may relay its
    # middle events from the socket through the reader's `fast` (completions/pump.py).
    pumped: bool = False


def _same(body: bytes) -> bytes:
    return body


def _as_is(body: dict) -> dict:
    return body


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream kind. Registered in completions/upstreams/__init__.py under its `kind` (a `Route.api`)."""

    kind: str
    endpoint: str  # the path under the route's base URL, e.g. /chat/completions
    auth: Callable[[str], dict[str, str]]  # the provider key -> the headers that carry it (and fixed ones)
    # A stream's payloads, in the translated form; b"" each time the provider was silent for the given seconds.
    events: Callable[[urllib3.BaseHTTPResponse, float | None], Iterator[bytes]]
    completion_chars: Callable[[Any, str], int]  # characters generated in `choices` (under `message`/`delta`)
    answer_ok: Callable[[dict], bool]  # whether a plain JSON answer is one this kind settles (else: 502, no charge)
    accepts: frozenset[str] = frozenset()  # the forms surfaces speak that this kind serves by translation
    translate: Callable[[bytes], bytes] = _same  # a body in the accepted form -> this kind's request body
    plain: Callable[[dict], dict] = _as_is  # this kind's plain answer -> the accepted form's
    passthrough: Passthrough | None = None  # for the surface whose own API this is (`Surface.native`)
    # Kinds its providers also speak at the same base URL (an OpenAI-compatible provider serves Embeddings
    # too): a surface this kind cannot serve is sent to the route in one of these.
    siblings: tuple[str, ...] = ()
    # The same payloads as `events`, a list per network read (events that arrived together are relayed in one
    # write; an empty list for a silence); None: the relay reads `events` one at a time.
    event_batches: Callable[[urllib3.BaseHTTPResponse, float | None], Iterator[list[bytes]]] | None = None
    # Whether the provider's raw stream is chat chunks as `event_batches` reads them, so that the stream pump
    # may relay its middle chunks from the socket (completions/pump.py).
    pumped: bool = False
