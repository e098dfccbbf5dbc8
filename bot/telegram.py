"""The Bot API client: the one place pyTelegramBotAPI is pointed at TELEGRAM_API_URL."""

from __future__ import annotations

import telebot
from django.conf import settings
from telebot import apihelper
from telebot.types import InlineKeyboardButton, InlineKeyboardMarkup

# Which updates the bot asks Telegram for (webhook and polling alike).
ALLOWED_UPDATES = ["message", "callback_query", "pre_checkout_query"]
# Telegram wants a pre_checkout_query answered within 10 s; a Bot API call must not eat that budget.
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 8

ApiError = apihelper.ApiException


def client() -> telebot.TeleBot:
    """Return a Bot API client for TELEGRAM_BOT_TOKEN that calls TELEGRAM_API_URL."""
    if not settings.TELEGRAM_BOT_TOKEN:
        raise RuntimeError("TELEGRAM_BOT_TOKEN is not set")
    base = settings.TELEGRAM_API_URL.rstrip("/")
    # pyTelegramBotAPI keeps these module-global; every client of this process shares one API URL.
    apihelper.API_URL = base + "/bot{0}/{1}"
    apihelper.FILE_URL = base + "/file/bot{0}/{1}"
    apihelper.CONNECT_TIMEOUT = CONNECT_TIMEOUT_S
    apihelper.READ_TIMEOUT = READ_TIMEOUT_S
    return telebot.TeleBot(settings.TELEGRAM_BOT_TOKEN, parse_mode="HTML", threaded=False)


def keyboard(rows: list[list[tuple[str, str]]]) -> InlineKeyboardMarkup | None:
    """Build an inline keyboard from rows of (label, callback data); None when there are no buttons."""
    rows = [row for row in rows if row]
    if not rows:
        return None
    markup = InlineKeyboardMarkup()
    for row in rows:
        markup.row(*(InlineKeyboardButton(label, callback_data=data) for label, data in row))
    return markup


def send(chat_id: int, text: str, buttons: list[list[tuple[str, str]]] | None = None) -> None:
    """Send an HTML message to a chat."""
    client().send_message(chat_id, text, reply_markup=keyboard(buttons or []), link_preview_options=_no_preview())


def edit(chat_id: int, message_id: int, text: str, buttons: list[list[tuple[str, str]]] | None = None) -> None:
    """Replace the text (and buttons) of a message the bot sent."""
    client().edit_message_text(text, chat_id=chat_id, message_id=message_id, reply_markup=keyboard(buttons or []))


def answer_callback(query_id: str, text: str | None = None) -> None:
    """Stop the button's spinner, optionally with a short notice."""
    client().answer_callback_query(query_id, text=text)


def _no_preview() -> telebot.types.LinkPreviewOptions:
    return telebot.types.LinkPreviewOptions(is_disabled=True)
