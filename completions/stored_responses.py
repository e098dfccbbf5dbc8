"""Stored Responses answers: kept after their charge, read back by their owner account, pruned after
RESPONSES_RETENTION_DAYS.

A response is stored once its charge is written and outside that transaction (completions/surfaces/responses.py
calls `response_store` after settling), so a failure to store it never touches the money.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from core import exactjson
from core.db import could_be_key

from .models import StoredResponse

if TYPE_CHECKING:
    from .settlement import Started

INPUT_ITEMS_LIMIT = 100


def retention_start(now: datetime | None = None) -> datetime:
    """The oldest creation time still kept."""
    return (now or timezone.now()) - timedelta(days=settings.RESPONSES_RETENTION_DAYS)


def _owned(account_id: int):
    return StoredResponse.objects.filter(account_id=account_id, created_at__gte=retention_start())


def _could_be(response_id: str) -> bool:
    """Whether a client's id could name a stored response at all (no NUL, not too long): else none is found."""
    return could_be_key(response_id, StoredResponse._meta.pk.max_length)


def response_store(started: Started, response: dict[str, Any]) -> StoredResponse:
    """Keep a settled response with the whole input it answered (the conversation continued, then its own)."""
    request = started.request
    return StoredResponse.objects.create(
        id=started.generation_id,
        account_id=started.principal.account_id,
        api_key_id=started.principal.key_id,
        model=started.entry.public_id,
        previous_response_id=request.previous_response_id or "",
        input_items=[*request.context, *request.items],
        output=response["output"],
        body=exactjson.dumps(response),
        created_at=started.started_at,
    )


def response_conversation(response_id: str, account_id: int) -> list[dict[str, Any]] | None:
    """The items a response continuing `response_id` starts from: its input, then its output; None when the
    account has no such response (another account's, deleted or expired)."""
    if not _could_be(response_id):
        return None
    stored = _owned(account_id).filter(pk=response_id).only("input_items", "output").first()
    if stored is None:
        return None
    return [*stored.input_items, *stored.output]


def response_get(response_id: str, account_id: int) -> StoredResponse | None:
    return _owned(account_id).filter(pk=response_id).first() if _could_be(response_id) else None


def response_delete(response_id: str, account_id: int) -> bool:
    """Forget one of the account's responses; whether there was one."""
    if not _could_be(response_id):
        return False
    deleted, _ = StoredResponse.objects.filter(pk=response_id, account_id=account_id).delete()
    return bool(deleted)


def input_items_page(
    stored: StoredResponse, *, limit: int, order: str, after: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """One page of a stored response's input items (`order` asc or desc), starting after the item `after`."""
    items = list(stored.input_items)
    if order == "desc":
        items.reverse()
    if after:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return items[:limit], len(items) > limit


def stored_responses_prune(now: datetime | None = None) -> int:
    """Delete the responses older than the retention time; how many."""
    deleted, _ = StoredResponse.objects.filter(created_at__lt=retention_start(now)).delete()
    return deleted
