"""The command menu Telegram shows next to the message box, in both languages."""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext as _
from telebot.types import BotCommand

from .telegram import client


def _menu() -> list[BotCommand]:
    return [
        BotCommand("balance", _("Balance and spend this month")),
        BotCommand("topup", _("Add funds")),
        BotCommand("keys", _("API keys")),
        BotCommand("prices", _("Model prices")),
        BotCommand("usage", _("Latest requests")),
        BotCommand("redeem", _("Redeem a promo code")),
        BotCommand("help", _("All commands")),
        BotCommand("paysupport", _("Help with payments")),
    ]


def commands_publish() -> None:
    """Set the menu: Russian for everyone, English for English-language users."""
    bot = client()
    with translation.override("ru"):
        bot.set_my_commands(_menu())
    with translation.override("en"):
        bot.set_my_commands(_menu(), language_code="en")
