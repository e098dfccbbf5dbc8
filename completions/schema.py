"""The OpenAPI operation of POST /v1/chat/completions, which is a plain Django view (not a DRF one)."""

from __future__ import annotations

from typing import Any

_OBJECT = {"type": "object", "additionalProperties": {}}

CHAT_COMPLETIONS = {
    "post": {
        "operationId": "chat_completions_create",
        "summary": "Create a chat completion",
        "description": "OpenAI-compatible. Every parameter is forwarded; `usage.cost` is what was charged (USD). "
        "With `stream: true` the answer is a `text/event-stream` of chunks whose last one carries `usage.cost`.",
        "tags": ["chat"],
        "security": [{"ApiKey": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _OBJECT}}},
        "responses": {
            "200": {
                "description": "The completion (or its event stream).",
                "content": {
                    "application/json": {"schema": _OBJECT},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            **{
                status: {"description": why, "content": {"application/json": {"schema": _OBJECT}}}
                for status, why in (
                    ("400", "invalid_request"),
                    ("401", "invalid_api_key"),
                    ("402", "insufficient_funds"),
                    ("403", "account_suspended or key_spend_limit"),
                    ("404", "model_not_found"),
                    ("429", "rate_limit"),
                    ("502", "upstream_error"),
                )
            },
        },
    }
}


def add_chat_completions(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: document the chat completions operation."""
    result["paths"] = {"/v1/chat/completions": CHAT_COMPLETIONS, **result.get("paths", {})}
    return result
