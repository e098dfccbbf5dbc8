"""Upstream kinds: one module per API a provider speaks, each registered here by its kind (`Route.api`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .anthropic_messages import UPSTREAM as ANTHROPIC_MESSAGES
from .base import Outgoing, Passthrough, Upstream, UpstreamCall
from .embeddings import UPSTREAM as OPENAI_EMBEDDINGS
from .openai_chat import UPSTREAM as OPENAI_CHAT
from .openai_chat import upstream_open
from .openai_responses import UPSTREAM as OPENAI_RESPONSES

if TYPE_CHECKING:
    from django.http import HttpRequest

    from completions.candidates import Candidate
    from completions.surfaces.base import Surface

UPSTREAMS: dict[str, Upstream] = {
    upstream.kind: upstream for upstream in (OPENAI_CHAT, ANTHROPIC_MESSAGES, OPENAI_RESPONSES, OPENAI_EMBEDDINGS)
}


def native_of(surface: Surface, api: str) -> Passthrough | None:
    """How a route of kind `api` passes the surface's own API through, or None when it is translated."""
    upstream = UPSTREAMS.get(api)
    return upstream.passthrough if upstream is not None and surface.native == api else None


def kind_for(surface: Surface, api: str) -> Upstream | None:
    """The kind a route of kind `api` is called in for the surface: its own, natively or translating, else a
    sibling its providers also speak; None when none serves the surface (the route is skipped)."""
    upstream = UPSTREAMS.get(api)
    if upstream is None:
        return None
    if native_of(surface, api) is not None or surface.speaks in upstream.accepts:
        return upstream
    for sibling in upstream.siblings:
        other = UPSTREAMS.get(sibling)
        if other is not None and surface.speaks in other.accepts:
            return other
    return None


def serves(surface: Surface, api: str, request: Any = None) -> bool:
    """Whether a route of kind `api` can serve the surface (and this request: one that only the surface's own
    API can say, such as a Messages request with a server tool, needs a native route)."""
    if getattr(request, "untranslatable", None) is not None:
        return native_of(surface, api) is not None
    return kind_for(surface, api) is not None


def outgoing(surface: Surface, parsed: Any, request: HttpRequest, candidate: Candidate) -> Outgoing:
    """The request one candidate is sent: the client's own body on a native route, else translated."""
    route = candidate.route
    native = native_of(surface, route.api)
    if native is not None:
        return Outgoing(UPSTREAMS[route.api], native.body(parsed, route), native.headers(request))
    upstream = kind_for(surface, route.api)
    assert upstream is not None  # the pipeline keeps only the routes that serve the surface
    return Outgoing(upstream, upstream.translate(surface.upstream_body(parsed, route)))


__all__ = [
    "UPSTREAMS",
    "Outgoing",
    "Passthrough",
    "Upstream",
    "UpstreamCall",
    "kind_for",
    "native_of",
    "outgoing",
    "serves",
    "upstream_open",
]
