"""API surfaces: one module per wire format clients speak, each registered here (served at /v1/<path>)."""

from __future__ import annotations

from .base import Surface
from .chat import SURFACE as CHAT
from .messages import SURFACE as MESSAGES

SURFACES: tuple[Surface, ...] = (CHAT, MESSAGES)

__all__ = ["SURFACES", "Surface"]
