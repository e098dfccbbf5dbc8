"""Celery tasks for the books and low-balance alerts: thin, re-read by id, call a service, retry."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from functools import partial

from celery import shared_task
from django.core.cache import cache
from django.db import OperationalError, transaction

from .alerts import AlertDeliveryFailed, low_balance_check, low_balance_deliver, low_balance_sweep
from .reconciliation import reconcile_run

log = logging.getLogger(__name__)

# A customer below the threshold may send many requests a second; one check per account per this many
# seconds is plenty (the periodic sweep catches anything a skipped check would have found).
CHECK_DEBOUNCE_SECONDS = 10


# Scheduled tasks keep their results (django-celery-results) so every run is visible in admin.
@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, ignore_result=False)
def reconcile_task(
    trigger: str = "schedule", lookback_hours: float | None = None, full: bool | None = None
) -> int | None:
    """Run the usage reconciliation (`full`: a full audit); return the run id, or None when another run was
    in progress."""
    lookback = timedelta(hours=lookback_hours) if lookback_hours else None
    run = reconcile_run(trigger=trigger, lookback=lookback, full=full)
    return run.pk if run is not None else None


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def low_balance_check_task(account_id: int) -> list[int]:
    """Create the alerts an account's crossing below its threshold is due, and queue their delivery."""
    alerts = low_balance_check(account_id=account_id)
    for alert in alerts:
        transaction.on_commit(partial(_deliver_soon, alert.pk))
    return [alert.pk for alert in alerts]


@shared_task(
    bind=True,
    autoretry_for=(AlertDeliveryFailed, OperationalError),
    retry_backoff=30,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=5,
)
def low_balance_deliver_task(self, alert_id: int) -> str | None:
    """Deliver one alert at most once; a failed send is retried with exponential backoff, then recorded failed."""
    alert = low_balance_deliver(alert_id=alert_id, final_attempt=self.request.retries >= self.max_retries)
    return alert.status if alert is not None else None


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, ignore_result=False)
def low_balance_sweep_task() -> list[int]:
    """Alert every account whose crossing was missed and re-queue alerts whose delivery was lost."""
    alert_ids = low_balance_sweep()
    for alert_id in alert_ids:
        _deliver_soon(alert_id)
    return alert_ids


def _deliver_soon(alert_id: int) -> None:
    try:
        low_balance_deliver_task.delay(alert_id)
    except Exception:
        # A broker outage, or (eager mode) the delivery itself failing: the alert stays pending and the
        # sweep queues it again, so one alert never stops the others.
        log.exception("could not queue the delivery of low-balance alert #%s", alert_id)


def _check_soon(account_id: int) -> None:
    if cache.add(f"billing:low-balance-check:{account_id}", 1, timeout=CHECK_DEBOUNCE_SECONDS):
        low_balance_check_task.delay(account_id)


def low_balance_enqueue_on_commit(
    account_id: int, *, available: Decimal | None = None, threshold: Decimal | None = None
) -> None:
    """After the current transaction commits, check the account for a low-balance alert.

    Call it right after a charge. Pass the available balance and threshold when known: an account still
    at or above its threshold then costs nothing more. A failure to enqueue is logged, never raised into
    the request that already committed its charge; the periodic sweep catches up.
    """
    if available is not None and threshold is not None and available >= threshold:
        return
    transaction.on_commit(partial(_check_soon, account_id), robust=True)
