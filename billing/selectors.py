"""Reads of prices, balances and the ledger."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from accounts.models import Account

from .models import Hold, LedgerEntry, Price


def price_current_for(model_id: int, at: datetime | None = None) -> Price | None:
    """Return the price version of a model in force at `at` (default: now), or None if unpriced."""
    return (
        Price.objects.filter(model_id=model_id, effective_from__lte=at or timezone.now())
        .order_by("-effective_from")
        .first()
    )


def ledger_sum(account: Account) -> Decimal:
    """Return the sum of an account's ledger entries (what its balance must equal)."""
    return LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or Decimal(0)


def open_holds_sum(account: Account) -> Decimal:
    """Return the sum of an account's open holds (what its `held` must equal)."""
    return Hold.objects.filter(account=account, status=Hold.Status.OPEN).aggregate(s=Sum("amount"))["s"] or Decimal(0)
