"""What an upstream kind is: one API a provider speaks, and how the router calls and reads it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import urllib3

    from completions.candidates import Candidate
    from completions.routing import RouteInfo


@dataclass
class UpstreamCall:
    """An upstream response that answered 2xx, still unread, and the candidate (model and route) that gave it."""

    candidate: Candidate
    response: urllib3.BaseHTTPResponse

    @property
    def route(self) -> RouteInfo:
        return self.candidate.route


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream kind. Registered in completions/upstreams/__init__.py; surfaces name it by `kind`."""

    kind: str
    # Send to the first candidate that answers (`body_for(candidate)` builds each one's body); raises ApiError.
    open: Callable[[tuple[Candidate, ...], Callable[[Candidate], bytes]], UpstreamCall]
    events: Callable[[urllib3.BaseHTTPResponse], Iterator[bytes]]  # a stream's event payloads, as they come
    completion_chars: Callable[[Any, str], int]  # characters generated in `choices` (under `message`/`delta`)
    answer_ok: Callable[[dict], bool]  # whether a plain JSON answer is one this kind settles (else: 502, no charge)
