"""The operators' dashboard on the admin index: the last 24 hours and what needs attention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from accounts.models import Account
from billing.models import Hold, LedgerEntry, LowBalanceAlert, ReconciliationRun
from billing.money import ZERO

from .models import Generation


@dataclass(frozen=True)
class Dashboard:
    requests: int
    failed: int
    cancelled: int
    estimated: int
    charged: Decimal
    credited: Decimal
    paying_accounts: int
    open_holds: int
    held: Decimal
    expired_holds: int
    accounts_below_threshold: int
    alerts_failed: int
    last_run: ReconciliationRun | None


def dashboard_figures(now: datetime | None = None) -> Dashboard:
    """Figures for the last 24 hours and the open problems, in a handful of indexed queries."""
    now = now or timezone.now()
    since = now - timedelta(hours=24)
    gens = Generation.objects.filter(started_at__gte=since).aggregate(
        requests=Count("id"),
        failed=Count("id", filter=Q(status=Generation.Status.FAILED)),
        cancelled=Count("id", filter=Q(status=Generation.Status.CANCELLED)),
        estimated=Count("id", filter=Q(usage_source=Generation.UsageSource.ESTIMATED)),
        accounts=Count("account", distinct=True),
    )
    money = LedgerEntry.objects.filter(created_at__gte=since).aggregate(
        charged=Sum("amount", filter=Q(kind=LedgerEntry.Kind.CHARGE)),
        credited=Sum("amount", filter=Q(kind__in=[LedgerEntry.Kind.TOPUP, LedgerEntry.Kind.PROMO])),
    )
    holds = Hold.objects.filter(status=Hold.Status.OPEN).aggregate(
        count=Count("id"), held=Sum("amount"), expired=Count("id", filter=Q(expires_at__lt=now))
    )
    return Dashboard(
        requests=gens["requests"],
        failed=gens["failed"],
        cancelled=gens["cancelled"],
        estimated=gens["estimated"],
        charged=-(money["charged"] or ZERO),
        credited=money["credited"] or ZERO,
        paying_accounts=gens["accounts"],
        open_holds=holds["count"],
        held=holds["held"] or ZERO,
        expired_holds=holds["expired"],
        accounts_below_threshold=Account.objects.filter(
            status=Account.Status.ACTIVE, balance__lt=F("held") + F("low_balance_threshold")
        ).count(),
        alerts_failed=LowBalanceAlert.objects.filter(status=LowBalanceAlert.Status.FAILED).count(),
        last_run=ReconciliationRun.objects.order_by("-id").first(),
    )
