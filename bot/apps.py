from __future__ import annotations

from django.apps import AppConfig


class BotConfig(AppConfig):
    name = "bot"
    verbose_name = "Telegram bot"

    def ready(self) -> None:
        # billing must not import the bot, so the bot hands billing its Telegram parts here.
        from billing.alerts import register_channel
        from billing.models import TopUp
        from billing.topups import register_refunder

        from .alerts import send_low_balance_alert
        from .payments import refund_star_payment

        register_refunder(TopUp.Method.TELEGRAM_STARS, refund_star_payment)
        register_channel("telegram", send_low_balance_alert)
