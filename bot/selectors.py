"""Reads behind the bot's replies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import OuterRef, Subquery, Sum
from django.utils import timezone

from accounts.models import Account, ApiKey
from billing.models import LedgerEntry, Price
from completions.models import Generation
from completions.routing import sellable_models

PRICES_PER_PAGE = 15


@dataclass(frozen=True, slots=True)
class PricePage:
    """One page of the price list: (public id, price) rows, this page's number and the page count."""

    rows: list[tuple[str, Price]]
    page: int
    pages: int


def account_for_chat(chat_id: int) -> Account | None:
    """Return the account attached to a Telegram chat, if any."""
    return Account.objects.filter(telegram_chat_id=chat_id).first()


def month_start(now: datetime | None = None) -> datetime:
    """Return the start of the current calendar month (UTC)."""
    now = now or timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def spend_since(account: Account, since: datetime) -> Decimal:
    """Return what an account was charged since `since`, as a positive amount."""
    total = LedgerEntry.objects.filter(account=account, kind=LedgerEntry.Kind.CHARGE, created_at__gte=since).aggregate(
        s=Sum("amount")
    )["s"]
    return -(total or Decimal(0))


def price_page(page: int) -> PricePage:
    """Return a page (1-based, clamped) of the current prices of the sellable models."""
    now = timezone.now()
    current = Price.objects.filter(model=OuterRef("pk"), effective_from__lte=now).order_by("-effective_from")
    models = (
        sellable_models()
        .annotate(price_id=Subquery(current.values("pk")[:1]))
        .exclude(price_id=None)
        .values_list("public_id", "price_id")
    )
    total = models.count()
    pages = max(1, -(-total // PRICES_PER_PAGE))
    page = min(max(page, 1), pages)
    start = (page - 1) * PRICES_PER_PAGE
    chunk = list(models[start : start + PRICES_PER_PAGE])
    prices = Price.objects.in_bulk([price_id for _, price_id in chunk])
    return PricePage(rows=[(public_id, prices[price_id]) for public_id, price_id in chunk], page=page, pages=pages)


def recent_generations(account: Account, limit: int = 10) -> list[Generation]:
    """Return an account's latest generations, newest first."""
    return list(Generation.objects.filter(account=account).select_related("model").order_by("-started_at")[:limit])


def active_keys(account: Account) -> list[ApiKey]:
    """Return an account's keys that are not revoked, oldest first."""
    return list(ApiKey.objects.filter(account=account, revoked_at__isnull=True).order_by("id"))
