"""The books' gauges in the metrics (core/metrics.py): the open holds, computed when scraped."""

from __future__ import annotations

from django.db import connection
from django.db.models import Count, Min, Sum
from django.utils import timezone

from core.metrics import scrape_gauges

from .models import Hold

GAUGES = {
    "mlrouter_open_holds": "Holds open now: requests in flight, or left by a dead worker until reconciliation.",
    "mlrouter_open_holds_usd": "USD held by the open holds.",
    "mlrouter_oldest_open_hold_seconds": "Age of the oldest open hold (0 when none); growing means it is stuck.",
}


def open_holds_now() -> dict[str, float]:
    """Count, total and oldest age of the open holds: one query, over the few open holds (a partial index)."""
    try:
        totals = Hold.objects.filter(status=Hold.Status.OPEN).aggregate(
            n=Count("pk"), usd=Sum("amount"), first=Min("created_at")
        )
    finally:
        connection.close()  # a scrape holds no connection between calls, as the probes do not
    oldest = 0.0
    if totals["first"] is not None:
        oldest = max((timezone.now() - totals["first"]).total_seconds(), 0.0)
    return {
        "mlrouter_open_holds": float(totals["n"]),
        "mlrouter_open_holds_usd": float(totals["usd"] or 0),
        "mlrouter_oldest_open_hold_seconds": oldest,
    }


def register() -> None:
    """Add the open holds to every scrape (from BillingConfig.ready)."""
    scrape_gauges(GAUGES, open_holds_now)
