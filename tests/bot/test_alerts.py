from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import LowBalanceAlert
from bot.alerts import AlertUndeliverable, send_low_balance_alert
from bot.telegram import ApiError
from tests.factories import AccountFactory

from . import updates


def _alert(account) -> LowBalanceAlert:
    return LowBalanceAlert.objects.create(
        account=account, crossing="c1", channel="telegram", balance=Decimal("0.4213"), threshold=Decimal("1.00")
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "ru",
            "Низкий баланс: доступно $0.4213, это ниже порога уведомления $1.00. Пополните баланс командой /topup, "
            "чтобы ваши API-ключи продолжали работать.",
        ),
        (
            "en",
            "Low balance: $0.4213 available, below your alert threshold of $1.00. "
            "Top up with /topup to keep your API keys working.",
        ),
    ],
)
def test_the_alert_goes_to_the_accounts_chat_in_its_language(fake_bot_api, language, expected):
    account = AccountFactory(telegram_chat_id=updates.USER_ID, language=language)
    send_low_balance_alert(account, _alert(account))
    message = fake_bot_api.last("sendMessage")
    assert (message.chat_id, message.text) == (updates.USER_ID, expected)


@pytest.mark.django_db
def test_an_account_without_a_chat_cannot_be_alerted_by_telegram(fake_bot_api):
    account = AccountFactory(telegram_chat_id=None)
    with pytest.raises(AlertUndeliverable):
        send_low_balance_alert(account, _alert(account))
    assert fake_bot_api.called() == []


@pytest.mark.django_db
def test_a_bot_api_failure_is_raised_to_the_alert_job(fake_bot_api):
    account = AccountFactory(telegram_chat_id=updates.USER_ID)
    fake_bot_api.fail("sendMessage", error_code=403, description="Forbidden: bot was blocked by the user")
    with pytest.raises(ApiError):
        send_low_balance_alert(account, _alert(account))


@pytest.mark.django_db
def test_the_telegram_channel_is_registered_with_billing_alerts():
    alerts = pytest.importorskip("billing.alerts")
    assert "telegram" in alerts.channels_for(AccountFactory(telegram_chat_id=updates.USER_ID))
    assert "telegram" not in alerts.channels_for(AccountFactory(telegram_chat_id=None))
