"""A charge that takes an account under its threshold triggers the low-balance check right after commit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache

from billing.models import LowBalanceAlert
from billing.services import hold_place, hold_settle
from tests.factories import funded_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("money_path")]


@pytest.fixture(autouse=True)
def _no_debounce():
    cache.clear()


def test_a_charge_crossing_the_threshold_alerts_once(telegram, eager_celery, django_capture_on_commit_callbacks):
    account = funded_account("1.20", low_balance_threshold=Decimal("1.00"), telegram_chat_id=777)
    with django_capture_on_commit_callbacks(execute=True):
        hold_place(account_id=account.pk, amount=Decimal("0.10"), reference="gen-above")
        hold_settle(reference="gen-above", cost=Decimal("0.10"))
    assert telegram.sent == []

    with django_capture_on_commit_callbacks(execute=True):
        hold_place(account_id=account.pk, amount=Decimal("0.20"), reference="gen-cross")
        hold_settle(reference="gen-cross", cost=Decimal("0.15"))
    assert set(LowBalanceAlert.objects.filter(account=account).values_list("channel", flat=True)) == {
        "telegram",
        "email",
    }
    alert = LowBalanceAlert.objects.get(account=account, channel="telegram")
    assert (alert.channel, alert.status, alert.balance) == ("telegram", "sent", Decimal("0.95"))
    assert telegram.sent == [(account.pk, alert.pk)]


def test_a_charge_that_stays_above_the_threshold_enqueues_nothing(django_capture_on_commit_callbacks):
    account = funded_account("5.00", low_balance_threshold=Decimal("1.00"))
    with django_capture_on_commit_callbacks() as callbacks:
        hold_place(account_id=account.pk, amount=Decimal("0.10"), reference="gen-rich")
        hold_settle(reference="gen-rich", cost=Decimal("0.10"))
    assert callbacks == []
