"""Reads for the analytics pages and the account overview: rollup tables only, never generations or the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Trunc

from billing.models import LedgerEntry
from billing.money import ZERO

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
)
from .rollups import DAY, HOUR, UTC, day_floor, hour_floor

BUCKETS = ("hour", "day", "week")
MONEY_SUMS = ("revenue", "upstream_cost", "margin")
COUNT_SUMS = ("requests", "errors", "cancelled", "prompt_tokens", "completion_tokens", "costed")
# Breakdown dimension -> (the rollup columns grouped by, how a row is labelled).
GROUPS = {
    "model": ("model_id", "model__public_id"),
    "provider": ("provider_id", "provider__name"),
    "account": ("account_id", "account__name"),
    "key": ("api_key_id", "api_key__prefix", "api_key__name"),
    "surface": ("surface",),
    "app": ("app",),
}
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class Scope:
    """What the page shows: a period, a bucket size and the dimensions it is narrowed to."""

    start: datetime
    end: datetime
    bucket: str = "day"
    account_id: int | None = None
    api_key_id: int | None = None
    model_id: int | None = None
    provider_id: int | None = None
    surface: str = ""
    app: str | None = None

    @property
    def hourly(self) -> bool:
        return self.bucket == "hour"

    @property
    def snapped(self) -> Scope:
        """The period widened to whole hours (hourly) or whole UTC days (the daily rollups)."""
        if self.hourly:
            return replace(self, start=hour_floor(self.start), end=hour_floor(self.end - _TICK) + HOUR)
        return replace(self, start=day_floor(self.start), end=day_floor(self.end - _TICK) + DAY)

    @property
    def narrowed_by_customer(self) -> bool:
        return self.account_id is not None or self.api_key_id is not None or self.app is not None


_TICK = timedelta(microseconds=1)


@dataclass
class Figures:
    requests: int = 0
    errors: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    costed: int = 0
    revenue: Decimal = ZERO
    upstream_cost: Decimal = ZERO
    margin: Decimal = ZERO
    label: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def error_rate(self) -> Decimal | None:
        return Decimal(self.errors) / self.requests if self.requests else None

    @property
    def margin_rate(self) -> Decimal | None:
        """Margin over the revenue of the generations whose upstream cost is known."""
        costed_revenue = self.margin + self.upstream_cost
        return self.margin / costed_revenue if costed_revenue else None


def usage_rows(scope: Scope, group: str | None = None) -> QuerySet:
    """The rollup rows in scope: hourly rows for hour buckets, else daily rows; of those, the coarsest
    that hold the scope's filters and the breakdown (`group`)."""
    scope = scope.snapped
    time = "hour" if scope.hourly else "day"
    per_key, per_model, per_account = (
        (HourlyUsage, HourlyModelUsage, HourlyAccountUsage)
        if scope.hourly
        else (DailyUsage, DailyModelUsage, DailyAccountUsage)
    )
    by_model = scope.model_id is not None or scope.provider_id is not None or bool(scope.surface)
    if scope.narrowed_by_customer or group in ("account", "key", "app"):
        customer_only = scope.api_key_id is None and scope.app is None and not by_model
        table = per_account if customer_only and group in (None, "account") else per_key
    else:
        table = per_model
    rows = table.objects.filter(**{f"{time}__gte": scope.start, f"{time}__lt": scope.end})
    return rows.filter(_dimensions(scope)).order_by()


def usage_totals(scope: Scope) -> Figures:
    return _figures(usage_rows(scope).aggregate(**_sums()))


def usage_series(scope: Scope) -> list[Figures]:
    """One `Figures` per bucket over the whole period, empty buckets included, labelled with the bucket's start."""
    scope = scope.snapped
    time = "hour" if scope.hourly else "day"
    rows = usage_rows(scope).annotate(bucket=Trunc(time, scope.bucket, tzinfo=UTC)).values("bucket").annotate(**_sums())
    found = {row.pop("bucket"): _figures(row) for row in rows}
    series = []
    for start in bucket_starts(scope):
        figures = found.get(start, Figures())
        figures.label = start.isoformat()
        series.append(figures)
    return series


def usage_breakdown(scope: Scope, group: str, *, limit: int = 15) -> list[Figures]:
    """The largest `limit` values of a dimension by revenue (then requests), with their figures."""
    columns = GROUPS[group]
    sums = {**_sums(), "latency_ms": Sum("latency_ms_sum"), "latency_n": Sum("latency_count")}
    rows = usage_rows(scope, group).values(*columns).annotate(**sums).order_by("-revenue", "-requests")[:limit]
    result = []
    for row in rows:
        figures = _figures(row)
        average = round(row["latency_ms"] / row["latency_n"]) if row["latency_n"] else None
        figures.extra = {"id": row[columns[0]], "avg_ms": average}
        figures.label = _label(group, row)
        result.append(figures)
    return result


def latency_percentiles(scope: Scope, group: str) -> dict[int | None, dict[int, int | None]]:
    """Per model or provider id: the 50th, 95th and 99th percentile latency (ms, a bucket's upper bound).

    None as a percentile means slower than the last bound. The histogram has no account, key or app:
    those filters do not narrow it.
    """
    scope = scope.snapped
    time = "hour" if scope.hourly else "day"
    rows = (HourlyLatency if scope.hourly else DailyLatency).objects.filter(
        **{f"{time}__gte": scope.start, f"{time}__lt": scope.end}
    )
    narrow = Q()
    if scope.model_id is not None:
        narrow &= Q(model_id=scope.model_id)
    if scope.provider_id is not None:
        narrow &= Q(provider_id=scope.provider_id)
    if scope.surface:
        narrow &= Q(surface=scope.surface)
    column = GROUPS[group][0]
    histograms: dict[int | None, dict[int | None, int]] = {}
    for row in rows.filter(narrow).order_by().values(column, "le_ms").annotate(n=Sum("count")):
        histograms.setdefault(row[column], {})[row["le_ms"]] = row["n"]
    return {key: percentiles_of(histogram) for key, histogram in histograms.items()}


def percentiles_of(histogram: dict[int | None, int]) -> dict[int, int | None]:
    """Read the 50th, 95th and 99th percentile from bucket counts: the upper bound of the bucket that holds it."""
    total = sum(histogram.values())
    result: dict[int, int | None] = {}
    for p in PERCENTILES:
        rank = total * p / 100
        seen = 0
        result[p] = None
        for bound in (*LATENCY_BOUNDS_MS, None):
            seen += histogram.get(bound, 0)
            if seen >= rank:
                result[p] = bound
                break
    return result


def quality(scope: Scope, group: str) -> list[Figures]:
    """Per model or provider: requests, error rate, average latency and percentiles, busiest first."""
    rows = usage_breakdown(scope, group, limit=50)
    rows.sort(key=lambda f: -f.requests)
    percentiles = latency_percentiles(scope, group)
    for figures in rows:
        figures.extra["percentiles"] = percentiles.get(figures.extra["id"])
    return rows


@dataclass
class LedgerDay:
    label: str
    amounts: dict[str, Decimal]


def ledger_series(scope: Scope) -> tuple[list[LedgerDay], dict[str, tuple[int, Decimal]]]:
    """Top-ups, refunds, promos and adjustments per day (or week), and their totals (entries, amount)."""
    scope = replace(scope, bucket="week" if scope.bucket == "week" else "day").snapped
    rows = DailyLedger.objects.filter(day__gte=scope.start, day__lt=scope.end)
    if scope.account_id is not None:
        rows = rows.filter(account_id=scope.account_id)
    found: dict[datetime, dict[str, Decimal]] = {}
    for row in (
        rows.order_by()
        .annotate(bucket=Trunc("day", scope.bucket, tzinfo=UTC))
        .values("bucket", "kind")
        .annotate(amount=Sum("amount"))
    ):
        found.setdefault(row["bucket"], {})[row["kind"]] = row["amount"]
    kinds = [kind for kind in LedgerEntry.Kind.values if kind != LedgerEntry.Kind.CHARGE]
    series = [LedgerDay(start.isoformat(), found.get(start, {})) for start in bucket_starts(scope)]
    totals = {kind: (0, ZERO) for kind in kinds}
    for row in rows.order_by().values("kind").annotate(n=Sum("entries"), amount=Sum("amount")):
        totals[row["kind"]] = (row["n"], row["amount"])
    return series, totals


def account_spend(account_id: int, since: datetime) -> Decimal:
    """What an account was charged for the generations it started since `since` (hour granularity)."""
    rows = HourlyUsage.objects.filter(account_id=account_id, hour__gte=hour_floor(since))
    return rows.aggregate(s=Sum("revenue"))["s"] or ZERO


def account_top_models(account_id: int, since: datetime, *, limit: int = 5) -> list[Figures]:
    scope = Scope(start=since, end=hour_floor(since) + timedelta(days=3650), bucket="hour", account_id=account_id)
    return usage_breakdown(scope, "model", limit=limit)


def keys_spend(account_id: int, key_ids: list[int], since: datetime | None) -> dict[int, Decimal]:
    """What each key was charged since a UTC midnight (None: ever), from the daily rollups."""
    rows = DailyUsage.objects.filter(account_id=account_id, api_key_id__in=key_ids)
    if since is not None:
        rows = rows.filter(day__gte=day_floor(since))
    return {row["api_key_id"]: row["s"] for row in rows.order_by().values("api_key_id").annotate(s=Sum("revenue"))}


def account_credits(account_id: int) -> dict[str, Decimal]:
    """The account's lifetime sums per ledger kind other than charges, from the daily rollup."""
    rows = DailyLedger.objects.filter(account_id=account_id).order_by().values("kind").annotate(s=Sum("amount"))
    return {row["kind"]: row["s"] for row in rows}


def bucket_starts(scope: Scope) -> list[datetime]:
    start = scope.start
    if scope.bucket == "week":
        start = start - timedelta(days=start.weekday())
    step = {"hour": HOUR, "day": DAY, "week": timedelta(weeks=1)}[scope.bucket]
    starts = []
    while start < scope.end:
        starts.append(start)
        start += step
    return starts


def _dimensions(scope: Scope) -> Q:
    narrow = Q()
    for name in ("account_id", "api_key_id", "model_id", "provider_id"):
        value = getattr(scope, name)
        if value is not None:
            narrow &= Q(**{name: value})
    if scope.surface:
        narrow &= Q(surface=scope.surface)
    if scope.app is not None:
        narrow &= Q(app=scope.app)
    return narrow


def _sums() -> dict:
    return {name: Sum(name) for name in (*COUNT_SUMS, *MONEY_SUMS)}


def _figures(row: dict) -> Figures:
    values = {name: row.get(name) or 0 for name in COUNT_SUMS}
    values |= {name: row.get(name) or ZERO for name in MONEY_SUMS}
    return Figures(**values)


def _label(group: str, row: dict) -> str:
    if group == "key":
        return f"{row['api_key__prefix']}… {row['api_key__name']}".strip()
    if group == "account":
        return f"{row['account__name']} (#{row['account_id']})"
    if group == "provider":
        return row["provider__name"] or "no provider"
    if group == "app":
        return row["app"] or "(no X-Title)"
    return str(row[GROUPS[group][-1]])
