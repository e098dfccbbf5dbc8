"""What the request path knows about a key, cached in-process for AUTH_CACHE_SECONDS.

The cache is per process on purpose: a hit costs no network round trip. Revoking a key or suspending
an account clears this process's entry at once; other processes notice within AUTH_CACHE_SECONDS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

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

    is_authenticated = True


# key hash -> (fresh until, usable until, principal), in time.monotonic() seconds
_cache: dict[str, tuple[float, float, KeyPrincipal | None]] = {}
# After AUTH_CACHE_SECONDS an entry is reloaded; this much longer it still answers the key's requests that
# arrive while one of them reloads it, so that they do not all query the database at once.
_RELOAD_GRACE_S = 2.0
_last_used_written: dict[int, float] = {}


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
    )


def principal_for_secret(secret: str) -> KeyPrincipal | None:
    """Return the principal for a presented key, or None when no such key exists."""
    if not key_looks_valid(secret):
        return None
    digest = key_hash(secret)
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and now < hit[0]:
        principal = hit[2]
    elif hit is not None and now < hit[1]:
        _cache[digest] = (hit[1], hit[1], hit[2])
        principal = _load(digest, now)
    else:
        principal = _load(digest, now)
    if principal is not None and not principal.revoked:
        _touch_last_used(principal.key_id, now)
    return principal


def _load(digest: str, now: float) -> KeyPrincipal | None:
    api_key = ApiKey.objects.select_related("account").filter(key_hash=digest).first()
    principal = principal_from_key(api_key) if api_key else None
    if len(_cache) >= _MAX_ENTRIES:
        _cache.clear()
    ttl = settings.AUTH_CACHE_SECONDS
    _cache[digest] = (now + ttl, now + ttl + _RELOAD_GRACE_S, principal)
    return principal


def principal_forget(digest: str) -> None:
    """Drop a key from this process's cache (after revocation or an account status change)."""
    _cache.pop(digest, None)


def principal_cache_clear() -> None:
    """Forget every cached key in this process."""
    _cache.clear()
    _last_used_written.clear()


def _touch_last_used(key_id: int, now: float) -> None:
    if now - _last_used_written.get(key_id, -_LAST_USED_EVERY_S) < _LAST_USED_EVERY_S:
        return
    _last_used_written[key_id] = now
    ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
