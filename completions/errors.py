"""Every /v1 error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.

Raised anywhere on the request's way (`ApiError`) and rendered in one place (`error_response`); DRF's
own exceptions on the read endpoints go through `api_exception_handler`.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404, HttpResponse
from rest_framework import exceptions


class ApiError(Exception):
    """An error the API returns in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    TYPES = {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "insufficient_funds",
        403: "permission_error",
        404: "not_found_error",
        405: "invalid_request_error",
        413: "invalid_request_error",
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
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return self.TYPES.get(self.status, "upstream_error" if self.status >= 500 else "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None) -> ApiError:
    """The 400 of a malformed request."""
    return ApiError(400, message, code="invalid_request", param=param)


def error_response(error: ApiError) -> HttpResponse:
    """Render an ApiError as a JSON response with its headers."""
    response = HttpResponse(json.dumps(error.body()), status=error.status, content_type="application/json")
    for name, value in error.headers.items():
        response[name] = value
    return response


def internal_error() -> HttpResponse:
    """The answer to an unexpected error (it is logged, never described to the client)."""
    return error_response(
        ApiError(500, "The server had an error while processing your request. Retry later.", code="internal_error")
    )


def api_exception_handler(exc: Exception, context: dict) -> HttpResponse | None:
    """DRF exception handler: every /v1 error in OpenAI's shape."""
    if isinstance(exc, ApiError):
        return error_response(exc)
    if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
        return error_response(ApiError(401, str(exc.detail), code="invalid_api_key"))
    if isinstance(exc, exceptions.PermissionDenied):
        return error_response(ApiError(403, str(exc.detail), code=str(exc.get_codes())))
    if isinstance(exc, Http404 | exceptions.NotFound):
        return error_response(ApiError(404, "Not found.", code="not_found"))
    if isinstance(exc, exceptions.MethodNotAllowed):
        # DRF's own text follows LANGUAGE_CODE; the API speaks English.
        method = context["request"].method
        return error_response(ApiError(405, f"Method {method} is not allowed here.", code="method_not_allowed"))
    if isinstance(exc, exceptions.APIException):
        return error_response(ApiError(exc.status_code, str(exc.detail), code=str(exc.get_codes())))
    return None
