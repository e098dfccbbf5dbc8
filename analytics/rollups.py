"""Keep the rollups up to date: recompute each open hour of usage and each open day of the ledger whole.

A period's rows are deleted and rebuilt from the source rows in one transaction, so a refresh that runs
twice, or crashes half way, never counts a generation twice; a generation that finishes after its hour
was first computed is picked up the next time that hour is recomputed. Hours are keyed by
`Generation.started_at` (indexed), so the refresh reads one hour's rows by index and writes nothing on
the request path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, DecimalField, F, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import LedgerEntry
from billing.money import ZERO
from completions.models import Generation

from .models import (
    LATENCY_BOUNDS_MS,
    DailyAccountUsage,
    DailyLatency,
    DailyLedger,
    DailyModelUsage,
    DailyUsage,
    HourlyAccountUsage,
    HourlyLatency,
    HourlyModelUsage,
    HourlyUsage,
    RollupPeriod,
)

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x6D6C_616E_616C_79
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# The last hours change with every request: recomputed on every refresh. Older open periods (waiting for
# late upstream costs or stuck pending rows) are recomputed at most this often.
RECENT = timedelta(hours=2)
RECHECK = timedelta(minutes=15)
# A ledger entry commits moments after its `created_at`: a day closes this long after it ended.
LEDGER_GRACE = timedelta(minutes=10)
LEDGER_KINDS = tuple(kind for kind in LedgerEntry.Kind.values if kind != LedgerEntry.Kind.CHARGE)

_MONEY = DecimalField(max_digits=24, decimal_places=10)
_FINISHED = ~Q(status=Generation.Status.PENDING)
_COSTED = _FINISHED & Q(upstream_cost__isnull=False)
USAGE_DIMENSIONS = ("account_id", "api_key_id", "model_id", "provider_id", "surface", "app")
# The coarse rollups' dimensions: the page reads them when nothing finer is asked.
MODEL_DIMENSIONS = ("model_id", "provider_id", "surface")
ACCOUNT_DIMENSIONS = ("account_id",)
COARSE_HOURLY = ((HourlyModelUsage, MODEL_DIMENSIONS), (HourlyAccountUsage, ACCOUNT_DIMENSIONS))
COARSE = ((DailyModelUsage, MODEL_DIMENSIONS), (DailyAccountUsage, ACCOUNT_DIMENSIONS))
USAGE_SUMS = (
    "requests",
    "errors",
    "cancelled",
    "prompt_tokens",
    "completion_tokens",
    "revenue",
    "upstream_cost",
    "costed",
    "margin",
    "latency_ms_sum",
    "latency_count",
)
LATENCY_DIMENSIONS = ("model_id", "provider_id", "surface", "le_ms")


@dataclass(frozen=True)
class Refreshed:
    hours: int
    days: int


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_floor(moment: datetime) -> datetime:
    return hour_floor(moment).replace(hour=0)


def rollups_refresh(*, now: datetime | None = None) -> Refreshed | None:
    """Recompute the open hours and days that are due; None when another refresh holds the lock."""
    with _exclusive() as acquired:
        if not acquired:
            log.info("analytics refresh skipped: another refresh is in progress")
            return None
        now = now or timezone.now()
        hours = _due(RollupPeriod.Series.USAGE, _first_generation_at(), HOUR, hour_floor, now)
        for start in hours:
            usage_hour_compute(start, now=now)
        days = _due(RollupPeriod.Series.LEDGER, _first_ledger_at(), DAY, day_floor, now)
        for start in days:
            ledger_day_compute(start, now=now)
        return Refreshed(hours=len(hours), days=len(days))


def rollups_reopen() -> int:
    """Mark every period open again, so the next refreshes recompute all of them (newest first)."""
    return RollupPeriod.objects.update(final=False, computed_at=None)


def usage_hour_compute(start: datetime, *, now: datetime) -> int:
    """Rebuild one hour's usage and latency rows and its day's rows; return the generations still pending."""
    end = start + HOUR
    rows = Generation.objects.filter(started_at__gte=start, started_at__lt=end).order_by()
    with transaction.atomic():
        period = RollupPeriod.objects.select_for_update().get(series=RollupPeriod.Series.USAGE, start=start)
        # One statement reads the sums and the pending count, so both see the same rows: a generation that
        # finishes meanwhile is either counted here or keeps the hour open.
        groups = rows.values(*USAGE_DIMENSIONS).annotate(pending=_pending(), **_usage_sums())
        pending = 0
        usage = []
        for group in groups:
            pending += group["pending"]
            if group["total_requests"]:
                dimensions = {name: group[name] for name in USAGE_DIMENSIONS}
                usage.append(HourlyUsage(hour=start, **dimensions, **{n: group[f"total_{n}"] for n in USAGE_SUMS}))
        HourlyUsage.objects.filter(hour=start).delete()
        HourlyUsage.objects.bulk_create(usage)
        _coarse_compute(COARSE_HOURLY, "hour", start, HourlyUsage.objects.filter(hour=start))
        latency = (
            rows.filter(_FINISHED, latency_ms__isnull=False)
            .annotate(le_ms=_latency_bucket())
            .values(*LATENCY_DIMENSIONS)
            .annotate(count=Count("pk"))
        )
        HourlyLatency.objects.filter(hour=start).delete()
        HourlyLatency.objects.bulk_create(HourlyLatency(hour=start, **row) for row in latency)
        _usage_day_compute(day_floor(start))
        period.pending = pending
        period.computed_at = now
        period.final = pending == 0 and end + timedelta(hours=settings.ANALYTICS_SETTLE_HOURS) <= now
        period.save(update_fields=["pending", "computed_at", "final"])
    return pending


def ledger_day_compute(start: datetime, *, now: datetime) -> None:
    """Rebuild one day's ledger rows (every kind but charges) from the ledger."""
    entries = LedgerEntry.objects.filter(created_at__gte=start, created_at__lt=start + DAY, kind__in=LEDGER_KINDS)
    with transaction.atomic():
        period = RollupPeriod.objects.select_for_update().get(series=RollupPeriod.Series.LEDGER, start=start)
        groups = entries.order_by().values("account_id", "kind").annotate(entries=Count("pk"), amount=Sum("amount"))
        DailyLedger.objects.filter(day=start).delete()
        DailyLedger.objects.bulk_create(DailyLedger(day=start, **group) for group in groups)
        period.computed_at = now
        period.final = start + DAY + LEDGER_GRACE <= now
        period.save(update_fields=["computed_at", "final"])


def _usage_day_compute(day: datetime) -> None:
    hours = HourlyUsage.objects.filter(hour__gte=day, hour__lt=day + DAY).order_by()
    DailyUsage.objects.filter(day=day).delete()
    sums = {name: Sum(name) for name in USAGE_SUMS}
    DailyUsage.objects.bulk_create(
        DailyUsage(day=day, **group) for group in hours.values(*USAGE_DIMENSIONS).annotate(**sums)
    )
    _coarse_compute(COARSE, "day", day, DailyUsage.objects.filter(day=day))
    latency = HourlyLatency.objects.filter(hour__gte=day, hour__lt=day + DAY).order_by()
    DailyLatency.objects.filter(day=day).delete()
    DailyLatency.objects.bulk_create(
        DailyLatency(day=day, **row) for row in latency.values(*LATENCY_DIMENSIONS).annotate(count=Sum("count"))
    )


def _coarse_compute(tables, time: str, start: datetime, rows: QuerySet) -> None:
    """Rebuild one period's coarse rows from its per-key rows `rows`."""
    sums = {name: Sum(name) for name in USAGE_SUMS}
    for table, dimensions in tables:
        table.objects.filter(**{time: start}).delete()
        groups = rows.order_by().values(*dimensions).annotate(**sums)
        table.objects.bulk_create(table(**{time: start}, **group) for group in groups)


def _usage_sums() -> dict:
    def total(expression, condition: Q, zero=0, output=None):
        return Coalesce(Sum(expression, filter=condition), Value(zero), output_field=output)

    # Named apart from the columns: `F("upstream_cost")` must mean the column, not the sum.
    sums = {
        "requests": Count("pk", filter=_FINISHED),
        "errors": Count("pk", filter=Q(status=Generation.Status.FAILED)),
        "cancelled": Count("pk", filter=Q(status=Generation.Status.CANCELLED)),
        "prompt_tokens": total("prompt_tokens", _FINISHED, output=IntegerField()),
        "completion_tokens": total("completion_tokens", _FINISHED, output=IntegerField()),
        "revenue": total("cost", _FINISHED, ZERO, _MONEY),
        "upstream_cost": total("upstream_cost", _COSTED, ZERO, _MONEY),
        "costed": Count("pk", filter=_COSTED),
        # From cost and upstream cost, not the stored margin: a late upstream cost may come without one.
        "margin": total(F("cost") - F("upstream_cost"), _COSTED, ZERO, _MONEY),
        "latency_ms_sum": total("latency_ms", _FINISHED, output=IntegerField()),
        "latency_count": Count("latency_ms", filter=_FINISHED),
    }
    return {f"total_{name}": expression for name, expression in sums.items()}


def _pending() -> Count:
    return Count("pk", filter=Q(status=Generation.Status.PENDING))


def _latency_bucket() -> Case:
    whens = [When(latency_ms__lte=bound, then=Value(bound)) for bound in LATENCY_BOUNDS_MS]
    return Case(*whens, default=Value(None), output_field=IntegerField())


def _due(series: str, first: datetime | None, step: timedelta, floor, now: datetime) -> list[datetime]:
    """Open the periods up to now that have no row yet, and return the open ones due for a computation."""
    periods = RollupPeriod.objects.filter(series=series)
    current = floor(now)
    if first is not None:
        earliest = periods.order_by("start").values_list("start", flat=True).first()
        latest = periods.order_by("-start").values_list("start", flat=True).first()
        # Extend at both ends only: rows written with an older time (an import, a test) open earlier periods.
        _open_range(series, floor(first), earliest or current + step, step)
        if latest is not None:
            _open_range(series, latest + step, current + step, step)
    open_periods: QuerySet[RollupPeriod] = periods.filter(final=False).order_by("start")
    recent = list(open_periods.filter(start__gte=current - RECENT).values_list("start", flat=True))
    stale = Q(computed_at__isnull=True) | Q(computed_at__lt=now - RECHECK)
    # Newest first: during a long backfill the recent days are right first.
    older = open_periods.filter(stale, start__lt=current - RECENT).order_by("-start").values_list("start", flat=True)
    older = older[: settings.ANALYTICS_HOURS_PER_RUN]
    return [*older, *recent]


def _open_range(series: str, start: datetime, stop: datetime, step: timedelta) -> None:
    new = []
    while start < stop:
        new.append(RollupPeriod(series=series, start=start))
        start += step
    RollupPeriod.objects.bulk_create(new, ignore_conflicts=True)


def _first_generation_at() -> datetime | None:
    return Generation.objects.order_by("started_at").values_list("started_at", flat=True).first()


def _first_ledger_at() -> datetime | None:
    return LedgerEntry.objects.order_by("created_at").values_list("created_at", flat=True).first()


@contextmanager
def _exclusive() -> Iterator[bool]:
    """Yield whether this process got the refresh lock (PostgreSQL advisory lock, not waiting)."""
    if connection.vendor != "postgresql":
        # SQLite (the demo) has one writer at a time, and a recomputation replaces what it computes.
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
