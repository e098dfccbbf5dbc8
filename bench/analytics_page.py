"""Time the analytics page over 24 h, 7 d, 30 d and 90 d on many rollup rows (see bench/README.md).

    DATABASE_URL=postgres://…/mlrouter_scale python bench/analytics_page.py --fill [--repeat 5] [--fine]

`--fill` replaces the usage rollups with synthetic rows for 200 accounts over 91 days (per account and
day: 2 keys × 5 models × 2 surfaces × 3 apps = 60 rows; the last 48 hours also hourly), then derives the
coarse hourly and daily rows (per model, per account) the way the refresh does. Use it on a scale database only: it
deletes the rollups.
`--fine` reads the per-key hourly and daily rows for every range, as the page did before the coarse rollups.
Not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402

from analytics import selectors  # noqa: E402
from analytics.models import DailyUsage, HourlyUsage  # noqa: E402

SUMS = (
    "requests, errors, cancelled, prompt_tokens, completion_tokens, revenue, upstream_cost, costed, margin, "
    "latency_ms_sum, latency_count"
)
DIMENSIONS = "account_id, api_key_id, model_id, provider_id, surface, app"
# One row per account, key, model, surface and app at `{time}`; figures vary with the row.
ROWS = f"""
    INSERT INTO {{table}} ({{time}}, {DIMENSIONS}, {SUMS})
    SELECT t, k.account_id, k.id, m.id, p.id, s, a, 10 + m.id %% 7, 1, 0, 5000, 2000,
           0.05 + m.id * 0.001, 0.03, 9, 0.02, 4200, 10
    FROM generate_series(date_trunc({{unit}}, now()) - %(span)s::interval, date_trunc({{unit}}, now()),
                         ('1 ' || {{unit}})::interval) AS t
    CROSS JOIN (SELECT id, account_id FROM accounts_apikey
                WHERE account_id IN (SELECT id FROM accounts_account ORDER BY id LIMIT %(accounts)s)) AS k
    CROSS JOIN (SELECT id FROM completions_model ORDER BY id LIMIT 5) AS m
    CROSS JOIN (SELECT id FROM completions_provider ORDER BY id LIMIT 1) AS p
    CROSS JOIN unnest(ARRAY['chat', 'messages']) AS s
    CROSS JOIN unnest(ARRAY['', 'Cline', 'Roo Code']) AS a
"""


TABLES = (
    "analytics_hourlyusage",
    "analytics_dailyusage",
    "analytics_hourlymodelusage",
    "analytics_hourlyaccountusage",
    "analytics_dailymodelusage",
    "analytics_dailyaccountusage",
)


def fill() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"DELETE FROM {table}")
        # The session's time zone is UTC (Django's), so date_trunc gives UTC days.
        cursor.execute(ROWS.format(table="analytics_dailyusage", time="day", unit="'day'"),
                       {"span": "90 days", "accounts": 200})  # fmt: skip
        cursor.execute(ROWS.format(table="analytics_hourlyusage", time="hour", unit="'hour'"),
                       {"span": "48 hours", "accounts": 20})  # fmt: skip
        # The coarse rows, summed as the refresh sums them.
        sums = ", ".join(f"SUM({name.strip()})" for name in SUMS.split(","))
        for table, coarse, fine in (
            ("analytics_hourlymodelusage", "hour, model_id, provider_id, surface", "analytics_hourlyusage"),
            ("analytics_hourlyaccountusage", "hour, account_id", "analytics_hourlyusage"),
            ("analytics_dailymodelusage", "day, model_id, provider_id, surface", "analytics_dailyusage"),
            ("analytics_dailyaccountusage", "day, account_id", "analytics_dailyusage"),
        ):
            cursor.execute(
                f"INSERT INTO {table} ({coarse}, {SUMS}) SELECT {coarse}, {sums} FROM {fine} GROUP BY {coarse}"
            )
        for table in TABLES:
            cursor.execute(f"ANALYZE {table}")
            cursor.execute(f"SELECT count(*) FROM {table}")
            print(f"{table}: {cursor.fetchone()[0]} rows", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fill", action="store_true")
    parser.add_argument("--fine", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.fill:
        fill()
    if args.fine:
        # The per-key rows carry every coarse column.
        selectors.DailyModelUsage = selectors.DailyAccountUsage = DailyUsage
        selectors.HourlyModelUsage = selectors.HourlyAccountUsage = HourlyUsage
    user, _ = get_user_model().objects.get_or_create(
        username="crawl", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    url = reverse("admin:analytics_hourlyusage_changelist")
    print("| range | group | p50 ms | p95 ms | SQL ms (p50) | queries |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for period in ("24h", "7d", "30d", "90d"):
        for group in ("model", "account"):
            params = {"range": period, "group": group}
            assert client.get(url, params).status_code == 200  # warm
            times, db_times = [], []
            for _ in range(args.repeat):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    client.get(url, params)
                    times.append((time.perf_counter() - started) * 1000)
                db_times.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            median, sql = statistics.median(times), statistics.median(db_times)
            print(f"| {period} | {group} | {median:.0f} | {p95:.0f} | {sql:.0f} | {len(queries)} |")


if __name__ == "__main__":
    main()
