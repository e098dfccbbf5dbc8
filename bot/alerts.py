"""The Telegram delivery channel for low-balance alerts (registered with billing.alerts in BotConfig.ready)."""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext as _

from accounts.models import Account
from billing.models import LowBalanceAlert
from core.usd import usd_micro

from . import telegram


class AlertUndeliverable(Exception):
    """The account has no Telegram chat to send the alert to."""


def send_low_balance_alert(account: Account, alert: LowBalanceAlert) -> None:
    """Warn the account's chat, in its language, that its balance fell below the threshold; raise on failure."""
    if account.telegram_chat_id is None:
        raise AlertUndeliverable(f"account #{account.pk} has no Telegram chat")
    with translation.override(account.language):
        text = _(
            "Low balance: %(balance)s available, below your alert threshold of %(threshold)s. "
            "Top up with /topup to keep your API keys working."
        ) % {"balance": usd_micro(alert.balance), "threshold": usd_micro(alert.threshold)}
    telegram.send(account.telegram_chat_id, text)
