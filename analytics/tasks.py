"""Celery task for the analytics rollups: thin, calls the service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from .rollups import rollups_refresh


# Scheduled every minute (analytics/migrations/0002); results are kept so every run is visible in admin.
@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, ignore_result=False)
def rollups_refresh_task() -> dict[str, int] | None:
    """Recompute the open hours and days of the rollups; None when another refresh was in progress."""
    refreshed = rollups_refresh()
    return None if refreshed is None else {"hours": refreshed.hours, "days": refreshed.days}
