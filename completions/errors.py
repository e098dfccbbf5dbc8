"""Every /v1 error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.

Raised anywhere on the request's way (`ApiError`) and rendered in one place (`error_response`); DRF's
own exceptions on the read endpoints go through `api_exception_handler`.

Every error says whether sending the request again is safe, in the `x-should-retry` header that the
OpenAI SDKs obey (they retry 408, 409, 429 and 5xx answers by default, and never when it says `false`):
`true` only where nothing was charged and a later try can succeed (`RETRY_SAFE_STATUSES`), `false`
otherwise. An unexpected error (`internal_error`) is `false` once the provider answered, because the
request may then be charged; the pipeline marks that moment with `upstream_answered_mark`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions

from core.db import DATABASE_DOWN, release_db

log = logging.getLogger(__name__)

# Answers after which the same request may simply be sent again: a body that stalled on its way in, our
# own rate limit (after Retry-After), and the provider failing or unreachable before it answered (nothing
# is charged for any). Every other error is the request's own (400-415: sending it unchanged fails the
# same way) or may be charged.
RETRY_SAFE_STATUSES = frozenset({408, 429, 502, 503, 504})

# The request's environ key set once the provider answered: from then on the request may be charged.
_UPSTREAM_ANSWERED = "mlrouter.upstream_answered"


class ApiError(Exception):
    """An error the API returns in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    TYPES = {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "insufficient_funds",
        403: "permission_error",
        404: "not_found_error",
        405: "invalid_request_error",
        408: "invalid_request_error",
        413: "invalid_request_error",
        415: "invalid_request_error",
        429: "rate_limit_error",
        500: "server_error",
    }

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}
        # Whether the client may send the request again (the `x-should-retry` header); by status unless said.
        self.retry = status in RETRY_SAFE_STATUSES if retry is None else retry

    @property
    def type(self) -> str:
        return self.TYPES.get(self.status, "upstream_error" if self.status >= 500 else "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# The error body as the OpenAPI description declares it (OpenAPI 3.0: `nullable`).
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string"},
            },
        }
    },
}


def invalid(message: str, param: str | None = None) -> ApiError:
    """The 400 of a malformed request."""
    return ApiError(400, message, code="invalid_request", param=param)


# How a surface writes an error: (status, body). OpenAI's shape (`ApiError.body`) unless a surface says.
ErrorRender = Callable[[ApiError], tuple[int, dict[str, Any]]]


def openai_error(error: ApiError) -> tuple[int, dict[str, Any]]:
    return error.status, error.body()


def error_response(error: ApiError, render: ErrorRender = openai_error) -> HttpResponse:
    """Render an ApiError as a JSON response with its headers, in the shape `render` writes."""
    status, body = render(error)
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    response["x-should-retry"] = "true" if error.retry else "false"
    for name, value in error.headers.items():
        response[name] = value
    return response


def upstream_answered_mark(request: HttpRequest, generation_id: str) -> None:
    """Note that the provider answered this request: from now on it may be charged (see `internal_error`)."""
    request.META[_UPSTREAM_ANSWERED] = generation_id


def internal_error(request: HttpRequest | None = None, render: ErrorRender = openai_error) -> HttpResponse:
    """The answer to an unexpected error (it is logged, never described to the client).

    Before the provider answered, nothing can be charged: a hold, if placed, is released by
    reconciliation since no usage was recorded, so a retry is safe (`x-should-retry: true`). After, the
    relay may have settled the request (a stream's reader keeps reading and charges what the provider
    generated), so the client must not retry on its own (`false`) and is told where to look.
    """
    generation_id = request.META.get(_UPSTREAM_ANSWERED) if request is not None else None
    if not generation_id:
        message = "The server had an error while processing your request. Retry later."
        return error_response(ApiError(500, message, code="internal_error", retry=True), render)
    message = (
        "The server had an error after the provider answered; this request may have been charged. "
        f"See GET /v1/generation?id={generation_id} before sending it again."
    )
    headers = {"X-Generation-Id": generation_id}
    return error_response(ApiError(500, message, code="internal_error", headers=headers, retry=False), render)


def api_error_of(exc: Exception, method: str) -> ApiError | None:
    """The ApiError a DRF exception (or an ApiError) answers as; None for anything else."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
        return ApiError(401, str(exc.detail), code="invalid_api_key")
    if isinstance(exc, exceptions.PermissionDenied):
        return ApiError(403, str(exc.detail), code=str(exc.get_codes()))
    if isinstance(exc, Http404 | exceptions.NotFound):
        return ApiError(404, "Not found.", code="not_found")
    if isinstance(exc, exceptions.MethodNotAllowed):
        # DRF's own text follows LANGUAGE_CODE; the API speaks English.
        return ApiError(405, f"Method {method} is not allowed here.", code="method_not_allowed")
    if isinstance(exc, exceptions.APIException):
        return ApiError(exc.status_code, str(exc.detail), code=str(exc.get_codes()))
    return None


# When this process last answered a request 503 because PostgreSQL was unreachable (time.monotonic()).
_database_down_at: float | None = None
# How long after that last 503 the process still reports the database as down (metrics, alerts).
DATABASE_DOWN_REPORT_SECONDS = 15.0


def database_degraded() -> bool:
    """Whether this process answered a request 503 for want of PostgreSQL in the last few seconds."""
    return _database_down_at is not None and time.monotonic() - _database_down_at < DATABASE_DOWN_REPORT_SECONDS


def database_unavailable(exc: Exception) -> ApiError:
    """The 503 of a request that could not reach PostgreSQL before the provider was asked: nothing was charged.

    The pool hands out no connection for more than DB_POOL_TIMEOUT_S, so this comes within a second.
    """
    global _database_down_at
    _database_down_at = time.monotonic()
    release_db()  # the broken connection, if this thread had one
    log.warning("the database is unreachable (%s): answered 503", type(exc).__name__)
    message = "The service cannot reach its database right now. Nothing was charged; retry in a second."
    return ApiError(503, message, code="service_unavailable", headers={"Retry-After": "1"})


def api_exception_handler(exc: Exception, context: dict) -> HttpResponse | None:
    """DRF exception handler: every /v1 error in OpenAI's shape (a database outage too: 503)."""
    if isinstance(exc, DATABASE_DOWN):
        return error_response(database_unavailable(exc))
    error = api_error_of(exc, context["request"].method)
    return error_response(error) if error is not None else None
