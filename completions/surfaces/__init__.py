"""API surfaces: one module per wire format clients speak, each registered here (served at /v1/<path>)."""

from __future__ import annotations

from .base import Surface
from .chat import SURFACE as CHAT
from .embeddings import SURFACE as EMBEDDINGS
from .messages import SURFACE as MESSAGES
from .responses import SURFACE as RESPONSES

SURFACES: tuple[Surface, ...] = (CHAT, MESSAGES, RESPONSES, EMBEDDINGS)

__all__ = ["SURFACES", "Surface"]
