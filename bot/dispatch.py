"""Every update, from the webhook or from polling, goes through `process_update`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

from django.utils.translation import gettext as _

from accounts.models import Account

from . import commands, keys, payments, telegram
from .i18n import language_override
from .selectors import account_for_chat
from .services import update_claim, update_release
from .updates import Callback, Command, Event, MalformedUpdate, Payment, PreCheckout, Sender, parse_update

logger = logging.getLogger(__name__)

CommandHandler = Callable[[Sender, Account, str], None]
# Commands that work before /start; the rest need the chat's account.
OPEN_COMMANDS: dict[str, Callable[[Sender, Account | None, str], None]] = {
    "help": commands.help_,
    "paysupport": commands.paysupport,
    "prices": commands.prices,
}
ACCOUNT_COMMANDS: dict[str, CommandHandler] = {
    "balance": commands.balance,
    "usage": commands.usage,
    "keys": keys.keys,
    "topup": payments.topup,
    "redeem": commands.redeem,
}
OPEN_CALLBACKS: dict[str, Callable[[Callback, Account | None, str], None]] = {
    "prices": commands.prices_page,
}
ACCOUNT_CALLBACKS: dict[str, Callable[[Callback, Account, str], None]] = {
    "keys": keys.on_callback,
    "topup": payments.on_callback,
}


class Outcome(Enum):
    """What became of an update."""

    HANDLED = "handled"
    IGNORED = "ignored"
    DUPLICATE = "duplicate"
    MALFORMED = "malformed"


def process_update(update: Any) -> Outcome:
    """Handle an update once: malformed ones and copies of handled ones are dropped with a log line.

    An exception from a handler propagates after the update is released, so a redelivery is handled.
    """
    try:
        event = parse_update(update)
    except MalformedUpdate as error:
        logger.warning("malformed Telegram update dropped: %s", error)
        return Outcome.MALFORMED
    update_id = update["update_id"]
    if event is None:
        return Outcome.IGNORED
    if not update_claim(update_id):
        logger.info("duplicate Telegram update %s dropped", update_id)
        return Outcome.DUPLICATE
    try:
        dispatch(event)
    except Exception:
        update_release(update_id)
        raise
    return Outcome.HANDLED


def dispatch(event: Event) -> None:
    """Route a parsed event to its handler, in the chat's language."""
    if isinstance(event, PreCheckout):
        payments.on_pre_checkout(event)
        return
    account = account_for_chat(event.sender.chat_id)
    with language_override(event.sender.language_code, account):
        if isinstance(event, Payment):
            payments.on_payment(event)
        elif isinstance(event, Command):
            _on_command(event, account)
        elif isinstance(event, Callback):
            _on_callback(event, account)


def _on_command(command: Command, account: Account | None) -> None:
    chat_id = command.sender.chat_id
    if not command.sender.private:
        telegram.send(chat_id, _("Please talk to me in a private chat."))
    elif command.name == "start":
        commands.start(command.sender, command.args)
    elif command.name in OPEN_COMMANDS:
        OPEN_COMMANDS[command.name](command.sender, account, command.args)
    elif command.name not in ACCOUNT_COMMANDS:
        telegram.send(chat_id, _("Unknown command. /help lists what I can do."))
    elif account is None:
        telegram.send(chat_id, _("Send /start first to create your account."))
    else:
        ACCOUNT_COMMANDS[command.name](command.sender, account, command.args)


def _on_callback(callback: Callback, account: Account | None) -> None:
    prefix, _sep, rest = callback.data.partition(":")
    if not callback.sender.private or prefix not in OPEN_CALLBACKS | ACCOUNT_CALLBACKS:
        telegram.answer_callback(callback.query_id)
    elif prefix in OPEN_CALLBACKS:
        OPEN_CALLBACKS[prefix](callback, account, rest)
    elif account is None:
        telegram.answer_callback(callback.query_id, _("Send /start first to create your account."))
    else:
        ACCOUNT_CALLBACKS[prefix](callback, account, rest)
