"""Upstream kinds: one module per API a provider speaks, each registered here by its kind."""

from __future__ import annotations

from .base import Upstream, UpstreamCall
from .embeddings import UPSTREAM as OPENAI_EMBEDDINGS
from .openai_chat import UPSTREAM as OPENAI_CHAT

UPSTREAMS: dict[str, Upstream] = {upstream.kind: upstream for upstream in (OPENAI_CHAT, OPENAI_EMBEDDINGS)}

__all__ = ["UPSTREAMS", "Upstream", "UpstreamCall"]
