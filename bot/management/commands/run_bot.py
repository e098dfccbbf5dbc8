"""Run the bot by long polling for development: the same handlers as the webhook, no public URL needed."""

from __future__ import annotations

import logging
import time

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser
from telebot import apihelper

from bot.dispatch import process_update
from bot.telegram import ALLOWED_UPDATES, ApiError, client

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the Telegram bot with getUpdates long polling (development; production uses the webhook)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--poll", action="store_true", help="Long-poll getUpdates and handle each update.")
        parser.add_argument("--timeout", type=int, default=25, help="Long-polling timeout in seconds.")
        parser.add_argument("--once", action="store_true", help="Handle one batch of updates, then stop.")

    def handle(self, *args, poll: bool, timeout: int, once: bool, **options) -> None:
        if not poll:
            raise CommandError("Only --poll is supported here; in production Telegram calls the webhook (set_webhook).")
        bot = client()
        # getUpdates is refused while a webhook is set.
        bot.delete_webhook()
        self.stdout.write("Polling Telegram for updates; Ctrl-C stops.")
        offset: int | None = None
        while True:
            try:
                updates = apihelper.get_updates(
                    bot.token, offset=offset, allowed_updates=ALLOWED_UPDATES, long_polling_timeout=timeout
                )
            except (ApiError, requests.RequestException):
                logger.exception("getUpdates failed; retrying")
                time.sleep(3)
                continue
            for update in updates:
                offset = max(offset or 0, update["update_id"] + 1)
                try:
                    outcome = process_update(update)
                except Exception:
                    # Unlike the webhook's 500, polling moves on: a development loop should not stall on one update.
                    logger.exception("Telegram update %s failed", update.get("update_id"))
                else:
                    logger.info("update %s %s", update.get("update_id"), outcome.value)
            if once:
                return
