"""Crawl the admin of a filled database and print p50/p95 per page (see "The admin at scale" in bench/README.md).

    DATABASE_URL=postgres://…/mlrouter_scale python manage.py fill_scale --generations 1000000 --ledger 1000000
    DATABASE_URL=postgres://…/mlrouter_scale python bench/admin_crawl.py [--repeat 7] [--only generation]

It logs in as a superuser (made if missing) through Django's test client, in this process, against the
database in DATABASE_URL: every changelist, its second page, each filter's first choices, the searches
operators make (exact id, key prefix, e-mail, @username, a name) and a change page. For each: the
status, p50 and p95 of the whole request, and the median time its SQL took. Not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")

import django

django.setup()
# Lets the crawl read each changelist's filters and rows from the response, as tests do.
from django.test.utils import setup_test_environment  # noqa: E402

setup_test_environment()

from django.contrib import admin  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402

from accounts.models import Account, ApiKey  # noqa: E402
from billing.models import LedgerEntry  # noqa: E402
from completions.models import Generation  # noqa: E402

BUDGET_MS = 300


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _searches() -> dict[str, list[str]]:
    """Search terms per model label, taken from rows that exist."""
    account = Account.objects.exclude(telegram_username="").order_by("-id").first()
    key = ApiKey.objects.order_by("-id").first()
    generation = Generation.objects.order_by("-started_at").first()
    entry = LedgerEntry.objects.filter(kind="charge").order_by("-id").first()
    people = []
    if account:
        people = [str(account.pk), account.email, f"@{account.telegram_username}", " ".join(account.name.split()[-2:])]
    terms: dict[str, list[str]] = {
        "accounts.account": people,
        "accounts.apikey": [key.prefix, *people[:1]] if key else people[:1],
        "completions.generation": people[:3] + ([key.prefix] if key else []),
        "billing.ledgerentry": people[:3],
        "billing.hold": people[:1],
        "billing.topup": people[:2],
    }
    if generation:
        terms["completions.generation"] += [generation.pk, generation.request_id or "req_missing"]
    if entry:
        terms["billing.ledgerentry"] += [entry.idempotency_key, entry.reference, str(entry.pk)]
    return terms


def _pages(client: Client, only: str | None) -> list[tuple[str, str]]:
    """(name, url) of every page to time."""
    pages = [("index", reverse("admin:index"))]
    searches = _searches()
    for model in sorted(admin.site._registry, key=lambda model: model._meta.label):
        label = model._meta.label_lower
        if only and only not in label:
            continue
        changelist = _url(model, "changelist")
        pages.append((f"{label} list", changelist))
        response = client.get(changelist)
        cl = response.context["cl"] if response.context and "cl" in response.context else None
        if cl is None:
            continue
        if cl.paginator.num_pages > 1:
            pages.append((f"{label} page 2", f"{changelist}?p=2"))
        for spec in cl.filter_specs:
            choices = [c for c in spec.choices(cl) if not c.get("selected")][:2]
            for choice in choices:
                name = f"{label} filter {spec.title}: {choice['display']}"
                pages.append((name, f"{changelist}{choice['query_string']}"))
        for term in searches.get(label, []):
            pages.append((f"{label} search {term[:24]!r}", f"{changelist}?{urlencode({'q': term})}"))
        first = cl.result_list[0] if cl.result_list else None
        if first is not None:
            pages.append((f"{label} detail", _url(model, "change", first.pk)))
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", help="Only models whose label contains this, e.g. generation.")
    args = parser.parse_args()
    user, _ = get_user_model().objects.get_or_create(
        username="crawl", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    rows = []
    for name, url in _pages(client, args.only):
        client.get(url)  # warm: the first request pays for templates and caches
        times, db_times = [], []
        status = 0
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                status = client.get(url).status_code
                times.append((time.perf_counter() - started) * 1000)
            db_times.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        rows.append((name, status, statistics.median(times), p95, statistics.median(db_times), len(queries)))
    width = max(len(name) for name, *_ in rows)
    print(f"| {'page'.ljust(width)} | status | p50 ms | p95 ms | SQL ms (p50) | queries |")
    print(f"| {'-' * width} | --- | ---: | ---: | ---: | ---: |")
    for name, status, p50, p95, db, count in rows:
        flag = " ⚠" if p95 > BUDGET_MS else ""
        print(f"| {name.ljust(width)} | {status} | {p50:.0f} | {p95:.0f}{flag} | {db:.0f} | {count} |")
    slow = [row[0] for row in rows if row[3] > BUDGET_MS]
    print(f"\n{len(rows)} pages, {len(slow)} over {BUDGET_MS} ms at p95", file=sys.stderr)


if __name__ == "__main__":
    main()
