"""The OpenAPI operations of the POST surfaces, which are plain Django views (not DRF ones)."""

from __future__ import annotations

from typing import Any

from .surfaces import SURFACES, messages


def add_surfaces(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: document each surface's operation, from its own module."""
    operations = {f"/v1/{surface.path}": surface.openapi for surface in SURFACES}
    operations["/v1/messages/count_tokens"] = messages.COUNT_TOKENS_OPENAPI
    result["paths"] = {**operations, **result.get("paths", {})}
    return result
