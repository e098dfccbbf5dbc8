"""Deep links that attach a Telegram chat to an account an operator created: t.me/<bot>?start=<token>."""

from __future__ import annotations

import time

from django.utils.crypto import constant_time_compare, salted_hmac

# A link token is valid this long after it was made.
LINK_TTL_SECONDS = 7 * 24 * 3600
_SALT = "bot.links"


def _signature(account_id: int, issued: str) -> str:
    return salted_hmac(_SALT, f"{account_id}-{issued}", algorithm="sha256").hexdigest()[:24]


def link_token_make(account_id: int, *, now: float | None = None) -> str:
    """Return a /start parameter (≤ 64 chars of [A-Za-z0-9_-], as Telegram requires) naming the account."""
    issued = format(int(now if now is not None else time.time()), "x")
    return f"link-{account_id}-{issued}-{_signature(account_id, issued)}"


def link_token_account_id(token: str, *, now: float | None = None) -> int | None:
    """Return the account id a valid, unexpired link token names, else None."""
    parts = token.split("-")
    if len(parts) != 4 or parts[0] != "link" or not parts[1].isdigit():
        return None
    account_id, issued, signature = int(parts[1]), parts[2], parts[3]
    if not constant_time_compare(signature, _signature(account_id, issued)):
        return None
    try:
        age = (now if now is not None else time.time()) - int(issued, 16)
    except ValueError:
        return None
    return account_id if 0 <= age <= LINK_TTL_SECONDS else None
