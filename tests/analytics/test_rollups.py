"""The rollups equal a direct aggregate of the generations and the ledger, and recomputing never double counts."""

from __future__ import annotations

import importlib
from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.db import connection
from django.db.models import Sum
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from analytics.models import (
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
from analytics.rollups import ADVISORY_LOCK_KEY, day_floor, hour_floor, rollups_refresh
from analytics.tasks import rollups_refresh_task
from billing.models import LedgerEntry
from billing.services import ledger_adjust, ledger_credit
from completions.models import Generation
from mlrouter.celery import app as celery_app

from .helpers import catalog, generation

pytestmark = pytest.mark.django_db

NOW = hour_floor(timezone.now()) + timedelta(minutes=30)
SUMS = ("requests", "errors", "cancelled", "prompt_tokens", "completion_tokens", "revenue", "upstream_cost", "margin")


@pytest.fixture
def cat():
    return catalog()


@pytest.fixture
def fixture_set(cat):
    """Generations over three hours and every dimension, with failures, unknown costs and no latency."""
    base = NOW - timedelta(hours=3)
    rows = [
        generation(cat, base + timedelta(minutes=1), cost="0.0123456789", upstream_cost="0.0100000001"),
        generation(cat, base + timedelta(minutes=2), key=1, model=1, provider=1, latency_ms=1800, app="Cline"),
        generation(cat, base + timedelta(minutes=3), status=Generation.Status.FAILED, cost="0", upstream_cost=None),
        generation(cat, base + timedelta(minutes=59), key=2, surface="embeddings", upstream_cost=None, latency_ms=None),
        generation(cat, base + timedelta(hours=1), status=Generation.Status.CANCELLED, latency_ms=99000),
        generation(cat, base + timedelta(hours=1, minutes=5), model=1, provider=None, latency_ms=50),
        generation(cat, base + timedelta(hours=2, minutes=59), key=2, app="Cline", cost="1.5", upstream_cost="2.25"),
        generation(cat, NOW - timedelta(minutes=1), key=1, latency_ms=51),
    ]
    return rows


def _direct(rows):
    """The expected sums per hour and dimensions, computed from the rows themselves."""
    expected = defaultdict(Counter)
    for g in rows:
        if g.status == Generation.Status.PENDING:
            continue
        key = (hour_floor(g.started_at), g.account_id, g.api_key_id, g.model_id, g.provider_id, g.surface, g.app)
        known = g.upstream_cost is not None
        expected[key].update(
            {
                "requests": 1,
                "errors": int(g.status == Generation.Status.FAILED),
                "cancelled": int(g.status == Generation.Status.CANCELLED),
                "prompt_tokens": g.prompt_tokens,
                "completion_tokens": g.completion_tokens,
            }
        )
        for name, value in (
            ("revenue", g.cost),
            ("upstream_cost", g.upstream_cost if known else Decimal(0)),
            ("margin", g.cost - g.upstream_cost if known else Decimal(0)),
        ):
            expected[key][name] = expected[key].get(name, Decimal(0)) + value
    return {key: {name: counts.get(name, 0) for name in SUMS} for key, counts in expected.items()}


def _hourly():
    return {
        (r.hour, r.account_id, r.api_key_id, r.model_id, r.provider_id, r.surface, r.app): {
            n: getattr(r, n) for n in SUMS
        }
        for r in HourlyUsage.objects.all()
    }


def _everything():
    tables = (
        HourlyUsage,
        HourlyModelUsage,
        HourlyAccountUsage,
        DailyUsage,
        DailyModelUsage,
        DailyAccountUsage,
        HourlyLatency,
        DailyLatency,
        DailyLedger,
    )
    return {
        t.__name__: Counter(tuple(v for k, v in row.items() if k != "id") for row in t.objects.values()) for t in tables
    }


def test_the_rollup_equals_a_direct_aggregate_of_the_generations(fixture_set):
    rollups_refresh(now=NOW)

    assert _hourly() == _direct(fixture_set)
    first = HourlyUsage.objects.get(revenue=Decimal("0.0123456789"))
    assert first.margin == Decimal("0.0023456788")
    assert HourlyUsage.objects.get(app="Cline", surface="chat", revenue=Decimal("1.5")).margin == Decimal("-0.75")
    daily = DailyUsage.objects.aggregate(requests=Sum("requests"), revenue=Sum("revenue"), margin=Sum("margin"))
    hourly = HourlyUsage.objects.aggregate(requests=Sum("requests"), revenue=Sum("revenue"), margin=Sum("margin"))
    assert daily == hourly
    assert hourly["requests"] == 8


@pytest.mark.parametrize(
    ("coarse", "per_key", "dimensions"),
    [
        (DailyModelUsage, DailyUsage, ("day", "model_id", "provider_id", "surface")),
        (DailyAccountUsage, DailyUsage, ("day", "account_id")),
        (HourlyModelUsage, HourlyUsage, ("hour", "model_id", "provider_id", "surface")),
        (HourlyAccountUsage, HourlyUsage, ("hour", "account_id")),
    ],
    ids=["daily per model", "daily per account", "hourly per model", "hourly per account"],
)
def test_a_coarse_rollup_equals_its_per_key_rollup_summed(fixture_set, coarse, per_key, dimensions):
    rollups_refresh(now=NOW)

    sums = {name: Sum(name) for name in (*SUMS, "costed", "latency_ms_sum", "latency_count")}
    fine = {
        tuple(row.pop(name) for name in dimensions): row
        for row in per_key.objects.order_by().values(*dimensions).annotate(**sums)
    }
    rows = {tuple(row.pop(name) for name in dimensions): row for row in coarse.objects.values(*dimensions, *sums)}
    assert rows == fine
    assert coarse.objects.count() < per_key.objects.count()
    assert coarse.objects.aggregate(r=Sum("requests"))["r"] == 8


def test_the_latency_histogram_counts_each_finished_generation_in_its_bucket(fixture_set):
    rollups_refresh(now=NOW)

    def bucket(ms):
        return next((bound for bound in LATENCY_BOUNDS_MS if ms <= bound), None)

    expected = Counter(
        (g.model_id, g.provider_id, g.surface, bucket(g.latency_ms)) for g in fixture_set if g.latency_ms is not None
    )
    stored = Counter()
    for row in HourlyLatency.objects.all():
        stored[(row.model_id, row.provider_id, row.surface, row.le_ms)] += row.count
    assert stored == expected
    assert stored[(fixture_set[4].model_id, fixture_set[4].provider_id, "chat", None)] == 1  # 99 s: past the bounds
    assert sum(DailyLatency.objects.values_list("count", flat=True)) == 7


def test_running_the_refresh_again_counts_nothing_twice(fixture_set):
    rollups_refresh(now=NOW)
    once = _everything()

    rollups_refresh(now=NOW)
    rollups_refresh(now=NOW + timedelta(minutes=20))
    rollups_refresh_task.delay()

    assert _everything() == once


def test_a_generation_that_finishes_after_its_hour_was_computed_is_counted_once(cat):
    started = NOW - timedelta(hours=3, minutes=10)
    late = generation(cat, started, status=Generation.Status.PENDING)
    generation(cat, started, cost="0.5")
    rollups_refresh(now=NOW)
    period = RollupPeriod.objects.get(series=RollupPeriod.Series.USAGE, start=hour_floor(started))
    assert (period.pending, period.final) == (1, False)
    assert HourlyUsage.objects.get().requests == 1

    Generation.objects.filter(pk=late.pk).update(
        status=Generation.Status.COMPLETED, cost=Decimal("0.25"), upstream_cost=Decimal("0.2"), latency_ms=700
    )
    # The hour is no longer among the most recent ones: it is recomputed once it is due again.
    rollups_refresh(now=NOW + timedelta(minutes=5))
    assert HourlyUsage.objects.get().requests == 1
    rollups_refresh(now=NOW + timedelta(minutes=20))
    rollups_refresh(now=NOW + timedelta(minutes=40))

    row = HourlyUsage.objects.get()
    assert (row.requests, row.revenue, row.upstream_cost, row.costed) == (
        2,
        Decimal("0.75"),
        Decimal("0.2060000000"),
        2,
    )
    assert DailyUsage.objects.get().requests == 2
    period.refresh_from_db()
    assert (period.pending, period.final) == (0, False)


def test_an_hour_is_final_only_after_the_settle_window_and_is_then_left_alone(cat, settings):
    settings.ANALYTICS_SETTLE_HOURS = 2
    started = NOW - timedelta(hours=1, minutes=40)
    generation(cat, started)
    rollups_refresh(now=NOW)
    period = RollupPeriod.objects.get(series=RollupPeriod.Series.USAGE, start=hour_floor(started))
    assert not period.final

    # A late upstream cost (reconciliation looks them up) is picked up while the hour is open.
    Generation.objects.update(upstream_cost=Decimal("0.009"))
    later = NOW + timedelta(hours=1)
    rollups_refresh(now=later)
    period.refresh_from_db()
    assert period.final
    assert HourlyUsage.objects.get().upstream_cost == Decimal("0.009")

    Generation.objects.update(upstream_cost=Decimal("0.001"))
    rollups_refresh(now=later + timedelta(hours=1))
    assert HourlyUsage.objects.get().upstream_cost == Decimal("0.009")


def test_the_daily_ledger_rollup_sums_every_kind_but_charges_per_account_and_day(cat):
    acme, globex = cat.accounts
    ledger_credit(account=acme, amount=Decimal("20"), idempotency_key="t:1", kind=LedgerEntry.Kind.TOPUP)
    ledger_credit(account=acme, amount=Decimal("5.5"), idempotency_key="t:2", kind=LedgerEntry.Kind.TOPUP)
    ledger_adjust(account=globex, amount=Decimal("-3.25"), idempotency_key="t:3", memo="refund by hand")
    generation(cat, NOW - timedelta(minutes=5))
    rollups_refresh(now=NOW)

    rows = {(r.account_id, r.kind): (r.entries, r.amount) for r in DailyLedger.objects.all()}
    # The funding credits of the catalog are top-ups too.
    assert rows[(acme.pk, "topup")] == (3, Decimal("125.5"))
    assert rows[(globex.pk, "topup")] == (1, Decimal("50"))
    assert rows[(globex.pk, "adjustment")] == (1, Decimal("-3.25"))
    assert "charge" not in {kind for _, kind in rows}
    assert set(DailyLedger.objects.values_list("day", flat=True)) == {day_floor(timezone.now())}

    rollups_refresh(now=NOW + timedelta(minutes=1))
    assert {(r.account_id, r.kind): (r.entries, r.amount) for r in DailyLedger.objects.all()} == rows


def test_generations_written_with_an_older_time_open_earlier_hours(cat):
    generation(cat, NOW - timedelta(minutes=10))
    rollups_refresh(now=NOW)
    generation(cat, NOW - timedelta(hours=5))
    rollups_refresh(now=NOW + timedelta(minutes=1))

    assert HourlyUsage.objects.aggregate(n=Sum("requests"))["n"] == 2


def test_a_backfill_goes_in_bounded_batches_newest_first_and_adds_up(cat, settings):
    settings.ANALYTICS_HOURS_PER_RUN = 3
    rows = [generation(cat, NOW - timedelta(hours=hours)) for hours in range(12)]

    rollups_refresh(now=NOW)
    usage = RollupPeriod.objects.filter(series=RollupPeriod.Series.USAGE)
    computed = set(usage.filter(computed_at__isnull=False).values_list("start", flat=True))
    assert computed == {hour_floor(NOW - timedelta(hours=h)) for h in range(6)}  # the 3 recent and 3 more
    for minutes in range(1, 4):
        rollups_refresh(now=NOW + timedelta(minutes=minutes))

    assert _hourly() == _direct(rows)


def test_a_refresh_while_another_one_runs_does_nothing(cat):
    generation(cat, NOW - timedelta(minutes=5))
    other = connection.copy()  # a second session, as another worker would have
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        assert rollups_refresh(now=NOW) is None
        assert not HourlyUsage.objects.exists()
    finally:
        # Closing may hand the session back to the pool: release the lock first.
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
        other.close()
    assert rollups_refresh(now=NOW) is not None
    assert HourlyUsage.objects.get().requests == 1


def test_a_migration_schedules_the_refresh_every_minute(db):
    # Transactional tests flush the row the migration wrote; running it again is a no-op otherwise.
    schedule = importlib.import_module("analytics.migrations.0002_refresh_schedule")
    schedule.forward(apps, None)
    schedule.forward(apps, None)
    celery_app.loader.import_default_modules()

    task = PeriodicTask.objects.get(task="analytics.tasks.rollups_refresh_task")
    assert (task.enabled, task.interval.every, task.interval.period, task.expire_seconds) == (True, 1, "minutes", 60)
    assert task.task in celery_app.tasks
