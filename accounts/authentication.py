"""DRF authentication for `Authorization: Bearer orb_live_…`."""

from __future__ import annotations

from datetime import UTC

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from .principals import KeyPrincipal, principal_for_secret


class AccountSuspended(exceptions.PermissionDenied):
    default_detail = "This account is suspended. Contact support."
    default_code = "account_suspended"


def bearer_token(authorization: str) -> str | None:
    """Return the token of an `Authorization: Bearer …` header value, or None."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def principal_authenticate(authorization: str) -> KeyPrincipal:
    """Return the active principal for a header value or raise the matching DRF exception."""
    token = bearer_token(authorization)
    if token is None:
        raise exceptions.AuthenticationFailed(
            "Missing API key: send 'Authorization: Bearer orb_live_…'.", code="invalid_api_key"
        )
    principal = principal_for_secret(token)
    if principal is None or principal.revoked:
        raise exceptions.AuthenticationFailed("Invalid or revoked API key.", code="invalid_api_key")
    if principal.expired():
        assert principal.expires_at is not None
        raise exceptions.AuthenticationFailed(
            f"This API key expired on {principal.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC. Ask for a new key.",
            code="invalid_api_key",
        )
    if not principal.account_active:
        raise AccountSuspended()
    return principal


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticates API clients by key; a request without the header stays anonymous."""

    def authenticate(self, request: Request) -> tuple[KeyPrincipal, str] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        principal = principal_authenticate(header)
        return principal, principal.key_prefix

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
