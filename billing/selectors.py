"""Reads of prices, balances and the ledger."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import Account

from .models import Hold, LedgerEntry, Price, RouteCost


def price_current_for(model_id: int, at: datetime | None = None) -> Price | None:
    """Return the price version of a model in force at `at` (default: now), or None if unpriced."""
    return (
        Price.objects.filter(model_id=model_id, effective_from__lte=at or timezone.now())
        .order_by("-effective_from")
        .first()
    )


def route_cost_current_for(route_id: int, at: datetime | None = None) -> RouteCost | None:
    """Return the cost version of a route in force at `at` (default: now), or None if its cost is unknown."""
    return (
        RouteCost.objects.filter(route_id=route_id, effective_from__lte=at or timezone.now())
        .order_by("-effective_from")
        .first()
    )


def credits_totals(account_id: int) -> tuple[Decimal, Decimal]:
    """Return (credits, usage) of an account: every ledger entry but charges, signed, and the charges.

    Credits are top-ups, promos, adjustments and refunds (a payment given back counts negative), so
    credits − usage is the balance, to the last decimal.
    """
    sums = LedgerEntry.objects.filter(account_id=account_id).aggregate(
        credits=Sum("amount", filter=~Q(kind=LedgerEntry.Kind.CHARGE)),
        charges=Sum("amount", filter=Q(kind=LedgerEntry.Kind.CHARGE)),
    )
    return sums["credits"] or Decimal(0), -(sums["charges"] or Decimal(0))


def ledger_sum(account: Account) -> Decimal:
    """Return the sum of an account's ledger entries (what its balance must equal)."""
    return LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or Decimal(0)


def open_holds_sum(account: Account) -> Decimal:
    """Return the sum of an account's open holds (what its `held` must equal)."""
    return Hold.objects.filter(account=account, status=Hold.Status.OPEN).aggregate(s=Sum("amount"))["s"] or Decimal(0)
