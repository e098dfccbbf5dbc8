"""What the request path knows about a key, cached in-process for AUTH_CACHE_SECONDS.

The cache is per process on purpose: a hit costs no network round trip. Revoking a key or suspending
an account clears this process's entry at once; other processes notice within AUTH_CACHE_SECONDS.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from core.cache import ProcessCache
from core.db import fetch_one, is_postgresql, opened_connection

from .keys import key_hash, key_looks_valid
from .models import Account, ApiKey

_MAX_ENTRIES = 20_000
# Writing last_used_at on every request would be a write on the hot path; once a minute is enough.
_LAST_USED_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    """The caller behind an API key, as the request path needs it."""

    key_id: int
    key_prefix: str
    account_id: int
    rpm_limit: int
    spend_limit: Decimal | None
    spend_period: str
    revoked: bool
    account_active: bool
    expires_at: datetime | None = None
    # Public model ids the key may use; empty: every model.
    allowed_models: frozenset[str] = frozenset()

    is_authenticated = True

    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def model_refused(self, models: tuple[str, ...]) -> str | None:
        """The first of the requested models this key may not use, or None."""
        if not self.allowed_models:
            return None
        return next((model for model in models if model not in self.allowed_models), None)


# After AUTH_CACHE_SECONDS an entry is reloaded; this much longer it still answers the key's requests that
# arrive while one of them reloads it, so that they do not all query the database at once.
_RELOAD_GRACE_S = 2.0
# key hash -> its principal (None: no such key)
_principals: ProcessCache[KeyPrincipal | None] = ProcessCache(
    "api keys", ttl=lambda: settings.AUTH_CACHE_SECONDS, grace=_RELOAD_GRACE_S, max_entries=_MAX_ENTRIES
)
# key id -> True while its last_used_at was written recently
_last_used_written: ProcessCache[bool] = ProcessCache(
    "api key last use", ttl=_LAST_USED_EVERY_S, max_entries=_MAX_ENTRIES
)


def principal_from_key(api_key: ApiKey) -> KeyPrincipal:
    """Build the principal of a key whose account is loaded."""
    return KeyPrincipal(
        key_id=api_key.pk,
        key_prefix=api_key.prefix,
        account_id=api_key.account_id,
        rpm_limit=api_key.rpm_limit,
        spend_limit=api_key.spend_limit,
        spend_period=api_key.spend_period,
        revoked=api_key.is_revoked,
        account_active=api_key.account.status == Account.Status.ACTIVE,
        expires_at=api_key.expires_at,
        allowed_models=frozenset(api_key.allowed_models or ()),
    )


def principal_for_secret(secret: str) -> KeyPrincipal | None:
    """Return the principal for a presented key, or None when no such key exists."""
    if not key_looks_valid(secret):
        return None
    digest = key_hash(secret)
    principal = _principals.get(digest, lambda: _load(digest))
    if principal is not None and not principal.revoked:
        _touch_last_used(principal.key_id)
    return principal


def _load(digest: str) -> KeyPrincipal | None:
    if is_postgresql():
        # One prepared statement on a pooled connection: a reload every AUTH_CACHE_SECONDS per key,
        # at about a fifth of the ORM query's CPU.
        row = fetch_one(_principal_sql(), {"digest": digest}, opened_connection())
        return None if row is None else _principal_from_row(row)
    api_key = ApiKey.objects.select_related("account").filter(key_hash=digest).first()
    return principal_from_key(api_key) if api_key else None


@functools.cache
def _principal_sql() -> str:
    """The columns `principal_from_key` reads, of the key whose hash is `%(digest)s` and of its account."""
    k, a = ApiKey._meta, Account._meta

    def key(name: str) -> str:
        return f'k."{k.get_field(name).column}"'

    columns = ", ".join(
        [
            *(key(name) for name in ("id", "prefix", "account", "rpm_limit", "spend_limit", "spend_period")),
            f"{key('revoked_at')} IS NOT NULL",
            f"""a."{a.get_field("status").column}" = '{Account.Status.ACTIVE.value}'""",
            key("expires_at"),
            key("allowed_models"),
        ]
    )
    return (
        f'SELECT {columns} FROM "{k.db_table}" k JOIN "{a.db_table}" a ON a."{a.pk.column}" = {key("account")} '  # noqa: S608
        f"WHERE {key('key_hash')} = %(digest)s"
    )


def _principal_from_row(row: tuple) -> KeyPrincipal:
    key_id, prefix, account_id, rpm_limit, spend_limit, spend_period, revoked, active, expires_at, allowed = row
    if isinstance(allowed, str):  # jsonb as text, where Django's loader is registered
        allowed = json.loads(allowed)
    return KeyPrincipal(
        key_id=key_id,
        key_prefix=prefix,
        account_id=account_id,
        rpm_limit=rpm_limit,
        spend_limit=spend_limit,
        spend_period=spend_period,
        revoked=revoked,
        account_active=active,
        expires_at=expires_at,
        allowed_models=frozenset(allowed or ()),
    )


def principal_forget(digest: str) -> None:
    """Drop a key from this process's cache (after revocation or an account status change)."""
    _principals.pop(digest)


def _touch_last_used(key_id: int) -> None:
    if _last_used_written.peek(key_id):
        return
    _last_used_written.put(key_id, True)
    ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
