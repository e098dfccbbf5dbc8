"""Low-balance alerts: one per crossing and channel, re-armed by a top-up, delivered at most once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache

from billing.alerts import (
    IN_FLIGHT,
    AlertDeliveryFailed,
    accounts_due_low_balance_alert,
    low_balance_check,
    low_balance_deliver,
    low_balance_sweep,
    register_channel,
    unregister_channel,
)
from billing.models import LedgerEntry, LowBalanceAlert
from billing.services import hold_place, hold_settle, ledger_credit
from billing.tasks import low_balance_deliver_task, low_balance_enqueue_on_commit, low_balance_sweep_task
from tests.factories import AccountFactory, funded_account
from tests.jobs.conftest import FakeSender

pytestmark = pytest.mark.django_db


def spend(account, cost: str) -> None:
    """Charge `cost` the way the request path does: hold, then settle."""
    reference = f"gen-{LedgerEntry.objects.count()}-{account.pk}"
    hold_place(account_id=account.pk, amount=Decimal(cost), reference=reference)
    hold_settle(reference=reference, cost=Decimal(cost))
    account.refresh_from_db()


def alerts_of(account) -> list[tuple[str, str, Decimal]]:
    return list(
        LowBalanceAlert.objects.filter(account=account).order_by("pk").values_list("channel", "crossing", "balance")
    )


@pytest.fixture
def customer(telegram):
    """$1.20 credited against the default $1.00 threshold; reachable by e-mail and Telegram."""
    return funded_account("1.20", telegram_chat_id=555)


def test_a_charge_that_crosses_the_threshold_creates_one_alert_per_channel(customer):
    topup = LedgerEntry.objects.get(account=customer)
    spend(customer, "0.30")

    created = low_balance_check(account_id=customer.pk)

    crossing = f"entry:{topup.pk}"
    assert alerts_of(customer) == [("email", crossing, Decimal("0.9")), ("telegram", crossing, Decimal("0.9"))]
    assert [a.status for a in created] == ["pending", "pending"]
    assert created[0].threshold == Decimal("1")


def test_checking_the_same_crossing_again_creates_nothing(customer):
    spend(customer, "0.30")
    low_balance_check(account_id=customer.pk)
    spend(customer, "0.40")

    assert low_balance_check(account_id=customer.pk) == []
    assert LowBalanceAlert.objects.filter(account=customer).count() == 2


def test_a_topup_above_the_threshold_rearms_the_alert(customer):
    spend(customer, "0.30")
    low_balance_check(account_id=customer.pk)
    rearm = ledger_credit(account=customer, amount=Decimal("1.00"), idempotency_key="rearm")
    assert low_balance_check(account_id=customer.pk) == []  # $1.90: above again, nothing to say

    spend(customer, "1.00")
    created = low_balance_check(account_id=customer.pk)

    assert [(a.channel, a.crossing, a.balance) for a in created] == [
        ("email", f"entry:{rearm.pk}", Decimal("0.9")),
        ("telegram", f"entry:{rearm.pk}", Decimal("0.9")),
    ]


def test_a_topup_that_stays_below_the_threshold_does_not_rearm(customer):
    spend(customer, "0.30")
    low_balance_check(account_id=customer.pk)
    ledger_credit(account=customer, amount=Decimal("0.05"), idempotency_key="small")
    spend(customer, "0.10")

    assert low_balance_check(account_id=customer.pk) == []


def test_open_holds_count_against_the_available_balance(customer):
    hold_place(account_id=customer.pk, amount=Decimal("0.25"), reference="gen-9-inflight")

    created = low_balance_check(account_id=customer.pk)

    assert [a.balance for a in created] == [Decimal("0.95"), Decimal("0.95")]


def test_an_account_funded_below_its_threshold_is_alerted_once_as_initial(channels):
    account = funded_account("0.50")
    assert [(a.channel, a.crossing) for a in low_balance_check(account_id=account.pk)] == [("email", "initial")]
    assert low_balance_check(account_id=account.pk) == []


def test_alerts_go_only_to_registered_channels_the_account_can_be_reached_on(channels):
    unregister_channel("telegram")
    by_chat_only = funded_account("0.50", email="", telegram_chat_id=777)
    never_funded = AccountFactory()

    assert low_balance_check(account_id=by_chat_only.pk) == []  # no Telegram channel registered
    assert low_balance_check(account_id=never_funded.pk) == []
    register_channel("telegram", FakeSender())
    assert [a.channel for a in low_balance_check(account_id=by_chat_only.pk)] == ["telegram"]


def test_an_unknown_channel_cannot_be_registered():
    with pytest.raises(ValueError):
        register_channel("sms", FakeSender())


def test_an_email_alert_is_delivered_once_through_django_mail(customer, mailoutbox):
    spend(customer, "0.30")
    email_alert = low_balance_check(account_id=customer.pk)[0]

    delivered = low_balance_deliver(alert_id=email_alert.pk)
    low_balance_deliver(alert_id=email_alert.pk)

    assert (delivered.status, delivered.attempts, delivered.error) == ("sent", 1, "")
    assert delivered.sent_at is not None
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [customer.email]
    assert "0.90" in mailoutbox[0].body and "1.00" in mailoutbox[0].body


def test_a_failed_delivery_stays_pending_with_its_error_and_fails_on_the_last_attempt(customer, telegram):
    telegram.failures = 2
    spend(customer, "0.30")
    alert = low_balance_check(account_id=customer.pk)[1]

    with pytest.raises(AlertDeliveryFailed):
        low_balance_deliver(alert_id=alert.pk)
    alert.refresh_from_db()
    assert (alert.status, alert.attempts, alert.sent_at) == ("pending", 1, None)
    assert "telegram unreachable" in alert.error

    last = low_balance_deliver(alert_id=alert.pk, final_attempt=True)
    assert (last.status, last.attempts) == ("failed", 2)
    assert telegram.sent == []


def test_the_delivery_task_retries_with_backoff_until_the_alert_is_sent(customer, telegram, eager_retries):
    telegram.failures = 2
    spend(customer, "0.30")
    alert = low_balance_check(account_id=customer.pk)[1]

    low_balance_deliver_task.delay(alert.pk)

    alert.refresh_from_db()
    assert (alert.status, alert.attempts) == ("sent", 3)
    assert telegram.sent == [(customer.pk, alert.pk)]
    assert (low_balance_deliver_task.retry_backoff, low_balance_deliver_task.max_retries) == (30, 5)


def test_the_delivery_task_records_failed_after_its_last_retry(customer, telegram, eager_retries):
    telegram.failures = 100
    spend(customer, "0.30")
    alert = low_balance_check(account_id=customer.pk)[1]

    low_balance_deliver_task.delay(alert.pk)

    alert.refresh_from_db()
    assert (alert.status, alert.attempts) == ("failed", 6)
    assert telegram.sent == []


def test_an_alert_whose_worker_died_mid_send_is_never_sent_again(customer, channels):
    calls = []

    def dies_mid_send(account, alert):
        calls.append(alert.pk)
        raise SystemExit("worker killed")

    register_channel("telegram", dies_mid_send)
    spend(customer, "0.30")
    alert = low_balance_check(account_id=customer.pk)[1]
    with pytest.raises(SystemExit):
        low_balance_deliver(alert_id=alert.pk)

    low_balance_deliver(alert_id=alert.pk)

    alert.refresh_from_db()
    assert calls == [alert.pk]
    assert (alert.status, alert.error) == ("sent", IN_FLIGHT)


def test_the_on_commit_hook_checks_and_delivers_after_the_charge_commits(
    customer, telegram, eager_celery, mailoutbox, django_capture_on_commit_callbacks
):
    cache.delete(f"billing:low-balance-check:{customer.pk}")
    with django_capture_on_commit_callbacks(execute=True):
        spend(customer, "0.30")
        low_balance_enqueue_on_commit(customer.pk)
        assert not LowBalanceAlert.objects.exists()

    assert sorted(LowBalanceAlert.objects.values_list("channel", "status")) == [("email", "sent"), ("telegram", "sent")]
    assert len(mailoutbox) == 1 and len(telegram.sent) == 1


def test_the_on_commit_hook_does_nothing_while_the_balance_is_above_the_threshold(
    customer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        low_balance_enqueue_on_commit(customer.pk, available=Decimal("1.20"), threshold=Decimal("1.00"))
    assert callbacks == []


def test_the_sweep_alerts_a_missed_crossing_once(customer, telegram, eager_celery, mailoutbox):
    above = funded_account("5.00")
    spend(customer, "0.30")  # crossed, but its check was never enqueued
    assert list(accounts_due_low_balance_alert()) == [customer]

    low_balance_sweep_task.delay()

    assert sorted(LowBalanceAlert.objects.values_list("channel", "status")) == [("email", "sent"), ("telegram", "sent")]
    assert list(accounts_due_low_balance_alert()) == []
    assert low_balance_sweep() == []
    assert not LowBalanceAlert.objects.filter(account=above).exists()


def test_the_sweep_skips_an_initial_crossing_already_alerted(channels):
    account = funded_account("0.50")
    low_balance_check(account_id=account.pk)
    assert list(accounts_due_low_balance_alert()) == []


def test_the_sweep_requeues_an_alert_whose_delivery_task_was_lost(customer):
    spend(customer, "0.30")
    alerts = low_balance_check(account_id=customer.pk)
    assert low_balance_sweep() == []  # just created: its own task is on the way

    LowBalanceAlert.objects.filter(pk=alerts[0].pk).update(created_at=alerts[0].created_at - timedelta(minutes=6))

    assert low_balance_sweep() == [alerts[0].pk]
