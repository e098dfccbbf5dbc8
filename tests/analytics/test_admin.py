"""The analytics page: figures from the rollups, every filter, and not one query on generations or the ledger."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from analytics.models import (
    DailyAccountUsage,
    DailyModelUsage,
    DailyUsage,
    HourlyAccountUsage,
    HourlyModelUsage,
    HourlyUsage,
)
from analytics.rollups import rollups_refresh
from billing.models import LedgerEntry
from billing.services import ledger_adjust
from completions.models import Generation
from tests.factories import UserFactory

from .helpers import catalog, generation

pytestmark = pytest.mark.django_db

URL = reverse("admin:analytics_hourlyusage_changelist")
FILTERS = [
    {},
    {"range": "24h"},
    {"range": "30d", "bucket": "week", "group": "account"},
    {"range": "90d", "group": "provider"},
    {"range": "7d", "bucket": "hour", "group": "key"},
    {"range": "custom", "start": "2020-01-01", "end": "2030-12-31", "group": "surface"},
    {"range": "7d", "app": "Cline", "group": "app"},
    {"range": "7d", "app": "-", "surface": "chat"},
]


@pytest.fixture
def operator_client(client):
    client.force_login(UserFactory(username="analyst"))
    return client


@pytest.fixture
def usage(settings):
    settings.ANALYTICS_HOURS_PER_RUN = 24 * 7
    cat = catalog()
    now = timezone.now()
    generation(cat, now - timedelta(hours=2), cost="1.25", upstream_cost="0.75", app="Cline", latency_ms=420)
    generation(cat, now - timedelta(hours=30), key=2, model=1, provider=1, cost="0.5", upstream_cost=None)
    generation(cat, now - timedelta(days=3), key=1, status=Generation.Status.FAILED, cost="0", upstream_cost=None)
    generation(cat, now - timedelta(days=3), key=1, cost="0.000018", upstream_cost="0.00001", latency_ms=2500)
    ledger_adjust(account=cat.accounts[1], amount=Decimal("-2"), idempotency_key="refund-1", memo="refund")
    rollups_refresh()
    return cat


def test_the_page_shows_the_rollups_figures_and_charts_data(operator_client, usage):
    response = operator_client.get(URL, {"range": "7d"})

    assert response.status_code == 200
    page = response.content.decode()
    assert '<div class="value" id="total-requests">4</div>' in page
    assert 'title="$1.750018">$1.750018</span>' in page
    assert 'title="$0.75001">$0.75001</span>' in page  # upstream cost, of the generations that report one
    assert "Top accounts" in page and "Acme Labs (#" in page
    charts = response.context["charts"]
    assert sum(charts["usage"]["requests"]) == 4
    assert sum(Decimal(v) for v in charts["usage"]["revenue"]) == Decimal("1.750018")
    assert charts["ledger"]["series"]["adjustment"][-1] == "-2"
    assert json.loads(page.split('id="analytics-data" type="application/json">')[1].split("</script>")[0]) == charts
    assert '<canvas id="chart-usage"' in page and "chart-4.6.1.umd.min.js" in page


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "&".join(f"{k}={v}" for k, v in f.items()) or "default")
def test_the_page_never_queries_generations_or_the_ledger(operator_client, usage, filters):
    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(URL, filters)

    assert response.status_code == 200
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert Generation._meta.db_table not in sql
    assert LedgerEntry._meta.db_table not in sql
    assert "analytics_" in sql


@pytest.mark.parametrize("group", ["model", "provider", "account", "surface"])
def test_long_ranges_read_the_coarse_rollups_with_the_same_figures(operator_client, usage, group):
    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(URL, {"range": "30d", "group": group})

    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert DailyModelUsage._meta.db_table in sql and DailyAccountUsage._meta.db_table in sql
    assert DailyUsage._meta.db_table not in sql
    scope = response.context["scope"]
    fine = DailyUsage.objects.filter(day__gte=scope.start, day__lt=scope.end).order_by()
    totals = response.context["totals"]
    expected = fine.aggregate(requests=Sum("requests"), revenue=Sum("revenue"), margin=Sum("margin"))
    assert (totals.requests, totals.revenue, totals.margin) == tuple(expected.values())
    assert tuple(expected.values()) == (4, Decimal("1.750018"), Decimal("0.500008"))
    column = {"model": "model_id", "provider": "provider_id", "account": "account_id", "surface": "surface"}[group]
    by_group = {row[column]: row["r"] for row in fine.values(column).annotate(r=Sum("revenue"))}
    assert {row.extra["id"]: row.revenue for row in response.context["breakdown"]} == by_group
    top = {row.extra["id"]: row.revenue for row in response.context["top_accounts"]}
    assert top == {row["account_id"]: row["r"] for row in fine.values("account_id").annotate(r=Sum("revenue"))}


@pytest.mark.parametrize("group", ["model", "provider", "account", "surface"])
@pytest.mark.parametrize("period", ["24h", "7d"])
def test_hour_buckets_read_the_coarse_hourly_rollups_with_the_same_figures(operator_client, usage, period, group):
    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(URL, {"range": period, "bucket": "hour", "group": group})

    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert f'"{HourlyModelUsage._meta.db_table}"' in sql and f'"{HourlyAccountUsage._meta.db_table}"' in sql
    assert f'"{HourlyUsage._meta.db_table}"' not in sql
    scope = response.context["scope"]
    assert scope.hourly
    fine = HourlyUsage.objects.filter(hour__gte=scope.start, hour__lt=scope.end).order_by()
    totals = response.context["totals"]
    expected = fine.aggregate(requests=Sum("requests"), errors=Sum("errors"), revenue=Sum("revenue"))
    expected |= fine.aggregate(upstream_cost=Sum("upstream_cost"), margin=Sum("margin"))
    assert (totals.requests, totals.errors, totals.revenue, totals.upstream_cost, totals.margin) == tuple(
        expected.values()
    )
    assert totals.requests == {"24h": 1, "7d": 4}[period]
    per_hour = {row["hour"].isoformat(): row["r"] for row in fine.values("hour").annotate(r=Sum("revenue"))}
    series = response.context["charts"]["usage"]
    assert {label: Decimal(r) for label, r in zip(series["labels"], series["revenue"]) if label in per_hour} == per_hour
    assert sum(series["requests"]) == totals.requests
    column = {"model": "model_id", "provider": "provider_id", "account": "account_id", "surface": "surface"}[group]
    by_group = {row[column]: row["r"] for row in fine.values(column).annotate(r=Sum("revenue"))}
    assert {row.extra["id"]: row.revenue for row in response.context["breakdown"]} == by_group
    top = {row.extra["id"]: row.revenue for row in response.context["top_accounts"]}
    assert top == {row["account_id"]: row["r"] for row in fine.values("account_id").annotate(r=Sum("revenue"))}
    by_model = {row.extra["id"]: (row.requests, row.errors) for row in response.context["by_model"]}
    expected_by_model = fine.values("model_id").annotate(n=Sum("requests"), e=Sum("errors"))
    assert by_model == {row["model_id"]: (row["n"], row["e"]) for row in expected_by_model}


def test_what_the_coarse_hourly_rollups_lack_is_read_from_the_hourly_rollup(operator_client, usage):
    cat = usage
    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(URL, {"range": "7d", "bucket": "hour", "key": cat.keys[1].pk})

    assert f'"{HourlyUsage._meta.db_table}"' in " ".join(q["sql"] for q in queries.captured_queries)
    assert (response.context["totals"].requests, response.context["totals"].errors) == (2, 1)


@pytest.mark.parametrize(
    "filters",
    [{"group": "key"}, {"app": "Cline"}, {"key": "first"}, {"model": "first", "group": "account"}],
    ids=["key breakdown", "app filter", "key filter", "model filter with accounts"],
)
def test_what_the_coarse_rollups_lack_is_read_from_the_daily_rollup(operator_client, usage, filters):
    cat = usage
    filters = {**filters, "range": "30d"}
    if filters.get("key") == "first":
        filters["key"] = cat.keys[1].pk
    if filters.get("model") == "first":
        filters["model"] = cat.models[0].pk
    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(URL, filters)

    assert DailyUsage._meta.db_table in " ".join(q["sql"] for q in queries.captured_queries)
    if "key" in filters:
        assert (response.context["totals"].requests, response.context["totals"].errors) == (2, 1)


def test_filters_narrow_the_figures(operator_client, usage):
    cat = usage
    by_model = operator_client.get(URL, {"range": "7d", "model": cat.models[1].pk}).context["totals"]
    by_key = operator_client.get(URL, {"range": "7d", "key": cat.keys[1].pk}).context["totals"]
    by_app = operator_client.get(URL, {"range": "7d", "app": "Cline"}).context["totals"]
    by_account = operator_client.get(URL, {"range": "7d", "account": cat.accounts[1].pk}).context["totals"]
    last_day = operator_client.get(URL, {"range": "24h"}).context["totals"]

    assert (by_model.requests, by_model.revenue) == (1, Decimal("0.5"))
    assert (by_key.requests, by_key.errors, by_key.revenue) == (2, 1, Decimal("0.000018"))
    assert (by_app.requests, by_app.revenue, by_app.margin) == (1, Decimal("1.25"), Decimal("0.5"))
    assert (by_account.requests, by_account.revenue) == (1, Decimal("0.5"))
    assert (last_day.requests, last_day.revenue) == (1, Decimal("1.25"))


def test_breakdowns_and_percentiles_per_model_and_provider(operator_client, usage):
    cat = usage
    response = operator_client.get(URL, {"range": "7d", "group": "provider"})

    labels = [row.label for row in response.context["breakdown"]]
    assert labels == ["openai", "anthropic"]
    assert f"provider={cat.providers[0].pk}" in response.context["breakdown"][0].extra["drill_url"]
    by_model = {row.label: row for row in response.context["by_model"]}
    first = by_model["openai/gpt-4o-mini"]
    assert (first.requests, first.errors) == (3, 1)
    assert first.extra["percentiles"] == {50: 500, 95: 3000, 99: 3000}
    assert first.extra["avg_ms"] == 1113  # (420 + 420 + 2500) / 3: a failure has a latency too
    assert "≤ 3 s" in response.content.decode()


def test_a_custom_range_must_be_complete_and_in_order(operator_client, usage):
    response = operator_client.get(URL, {"range": "custom", "start": "2026-02-02", "end": "2026-02-01"})

    assert response.status_code == 200
    assert "The last day is before the first." in response.content.decode()


def test_an_operator_without_the_view_permission_is_refused(client, usage):
    client.force_login(UserFactory(username="nobody", is_superuser=False))

    assert client.get(URL).status_code == 403


def test_a_rollup_rows_own_page_opens_read_only(operator_client, usage):
    row = HourlyUsage.objects.first()
    response = operator_client.get(reverse("admin:analytics_hourlyusage_change", args=[row.pk]))

    assert response.status_code == 200
    assert not response.context["has_change_permission"]
