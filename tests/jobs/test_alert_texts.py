from __future__ import annotations

from decimal import Decimal

import pytest

from billing.alerts import low_balance_message
from billing.models import LowBalanceAlert
from tests.factories import AccountFactory


@pytest.mark.parametrize(
    ("language", "subject", "start"),
    [
        (
            "ru",
            "ML Router: на балансе мало средств",
            "Доступный баланс — 0.95 USD, это ниже вашего порога уведомления 1.00 USD.",
        ),
        (
            "en",
            "ML Router: your balance is low",
            "Your available balance is 0.95 USD, below your alert threshold of 1.00 USD.",
        ),
    ],
)
def test_the_alert_email_speaks_the_accounts_language(db, language, subject, start):
    account = AccountFactory(language=language)
    alert = LowBalanceAlert(account=account, balance=Decimal("0.95"), threshold=Decimal("1.00"))
    assert low_balance_message(account, alert)[0] == subject
    assert low_balance_message(account, alert)[1].startswith(start)
