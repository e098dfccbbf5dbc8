"""Every error the API answers with: HTTP status and `code`, as the error-codes page lists them.

The `type` and the `x-should-retry` of each are not written here but computed by the API's own ApiError.
tests/docs checks this list against the codes the API's source can raise, so a new code cannot go
undocumented.
"""

from __future__ import annotations

from dataclasses import dataclass

from completions.errors import ApiError


@dataclass(frozen=True, slots=True)
class DocumentedError:
    """One `error.code`, the HTTP statuses it comes with and, per status, the exception the openai SDK raises."""

    code: str
    statuses: tuple[int, ...]
    python: tuple[str, ...]
    retry_varies: bool = False  # `x-should-retry` depends on the moment of failure (internal_error)

    @property
    def status_text(self) -> str:
        return " / ".join(str(status) for status in self.statuses)

    @property
    def types(self) -> str:
        """The `error.type` values the API sends with this code."""
        found = dict.fromkeys(ApiError(status, "", code=self.code).type for status in self.statuses)
        return ", ".join(found)

    @property
    def retry_text(self) -> str:
        """The `x-should-retry` values the API sends with this code."""
        if self.retry_varies:
            return "`true` / `false`"
        found = dict.fromkeys(ApiError(status, "", code=self.code).retry for status in self.statuses)
        return " / ".join(f"`{str(value).lower()}`" for value in found)

    @property
    def python_text(self) -> str:
        return ", ".join(dict.fromkeys(self.python))


API_ERRORS: tuple[DocumentedError, ...] = (
    DocumentedError("invalid_request", (400,), ("BadRequestError",)),
    DocumentedError("invalid_host", (400,), ("BadRequestError",)),
    DocumentedError("invalid_api_key", (401,), ("AuthenticationError",)),
    DocumentedError("insufficient_funds", (402,), ("APIStatusError",)),
    DocumentedError("account_suspended", (403,), ("PermissionDeniedError",)),
    DocumentedError("key_spend_limit", (403,), ("PermissionDeniedError",)),
    DocumentedError("model_not_allowed", (403,), ("PermissionDeniedError",)),
    DocumentedError("model_not_found", (404,), ("NotFoundError",)),
    DocumentedError("no_route", (404,), ("NotFoundError",)),
    DocumentedError("not_found", (404,), ("NotFoundError",)),
    DocumentedError("method_not_allowed", (405,), ("APIStatusError",)),
    DocumentedError("request_timeout", (408,), ("APIStatusError",)),
    DocumentedError("request_too_large", (413,), ("APIStatusError",)),
    DocumentedError("unsupported_media_type", (415,), ("APIStatusError",)),
    DocumentedError("rate_limit", (429,), ("RateLimitError",)),
    DocumentedError(
        "upstream_invalid_request",
        (400, 404, 413, 422),
        ("BadRequestError", "NotFoundError", "APIStatusError", "UnprocessableEntityError"),
    ),
    DocumentedError("upstream_error", (502,), ("InternalServerError",)),
    DocumentedError("upstream_unavailable", (503,), ("InternalServerError",)),
    DocumentedError("upstream_rate_limited", (503,), ("InternalServerError",)),
    DocumentedError("upstream_timeout", (504,), ("InternalServerError",)),
    DocumentedError("service_unavailable", (503,), ("InternalServerError",)),
    DocumentedError("internal_error", (500,), ("InternalServerError",), retry_varies=True),
)
