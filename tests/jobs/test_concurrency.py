"""Two copies of a job at once change nothing twice: the lock, row locks and unique keys hold."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from billing.alerts import low_balance_check, low_balance_deliver, register_channel
from billing.models import Hold, LedgerEntry, LowBalanceAlert, ReconciliationFinding, ReconciliationRun
from billing.reconciliation import ADVISORY_LOCK_KEY, reconcile_run
from billing.services import hold_place, hold_settle
from completions.models import Generation
from completions.reconciliation import expired_hold_resolve
from tests.factories import funded_account
from tests.jobs.conftest import expired_hold_for, make_generation

pytestmark = pytest.mark.django_db(transaction=True)


def at_once(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run `work` in `count` threads released together; return what each returned (or raised)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work()
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_reconciliations_at_once_settle_a_killed_workers_hold_once():
    account = funded_account("10.00")
    generations = [make_generation(account, prompt_tokens=1000, completion_tokens=500) for _ in range(5)]
    for generation in generations:
        expired_hold_for(generation, "0.05")

    runs = at_once(2, lambda: reconcile_run(trigger="race"))

    assert not [r for r in runs if isinstance(r, Exception)]
    for generation in generations:
        assert LedgerEntry.objects.filter(reference=generation.pk).count() == 1
    assert ReconciliationFinding.objects.filter(kind="expired_hold_settled").count() == 5
    account.refresh_from_db()
    assert (account.balance, account.held) == (Decimal("9.99775"), Decimal("0"))
    # Either the second run found the lock taken, or it came after the first and found nothing to do.
    assert sorted(r.status if r else "skipped" for r in runs) in (["findings", "skipped"], ["clean", "findings"])
    assert ReconciliationRun.objects.filter(status="running").count() == 0


def test_a_reconciliation_started_while_another_runs_steps_aside():
    holding, release = threading.Event(), threading.Event()

    def other_run() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
                holding.set()
                release.wait(10)
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
        finally:
            connection.close()

    thread = threading.Thread(target=other_run)
    thread.start()
    assert holding.wait(10)
    try:
        assert reconcile_run(trigger="second") is None
    finally:
        release.set()
        thread.join(10)
    assert not ReconciliationRun.objects.exists()
    assert reconcile_run(trigger="after").status == "clean"


def test_resolving_one_expired_hold_twice_at_once_settles_it_once():
    account = funded_account("10.00")
    generation = make_generation(account, prompt_tokens=1000, completion_tokens=500)
    expired_hold_for(generation, "0.05")
    hold = Hold.objects.get(reference=generation.pk)
    run = ReconciliationRun.objects.create(trigger="race")

    # Straight at the fix, past the run-wide advisory lock: the hold's row lock alone must hold.
    results = at_once(2, lambda: expired_hold_resolve(run=run, hold_id=hold.pk))

    assert sorted(type(r).__name__ for r in results) == ["NoneType", "ReconciliationFinding"]
    assert LedgerEntry.objects.get(reference=generation.pk).amount == Decimal("-0.00045")
    assert Generation.objects.get(pk=generation.pk).cost == Decimal("0.00045")


def test_eight_checks_of_one_crossing_at_once_create_one_alert_per_channel(channels):
    register_channel("telegram", lambda account, alert: None)
    account = funded_account("1.20", telegram_chat_id=99)
    hold_place(account_id=account.pk, amount=Decimal("0.30"), reference="gen-1-x")
    hold_settle(reference="gen-1-x", cost=Decimal("0.30"))

    results = at_once(8, lambda: low_balance_check(account_id=account.pk))

    assert not [r for r in results if isinstance(r, Exception)]
    assert sorted(a.channel for created in results for a in created) == ["email", "telegram"]
    assert LowBalanceAlert.objects.filter(account=account).count() == 2


def test_two_deliveries_of_one_alert_at_once_send_it_once(channels):
    sent: list[int] = []

    def slow_sender(account, alert) -> None:
        time.sleep(0.2)
        sent.append(alert.pk)

    register_channel("telegram", slow_sender)
    account = funded_account("0.50", email="", telegram_chat_id=98)
    alert = low_balance_check(account_id=account.pk)[0]

    at_once(2, lambda: low_balance_deliver(alert_id=alert.pk))

    alert.refresh_from_db()
    assert sent == [alert.pk]
    assert (alert.status, alert.attempts, alert.error) == ("sent", 1, "")
