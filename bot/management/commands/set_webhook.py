"""Register {base_url}/telegram/webhook/ with Telegram, with the secret token and the command menus."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bot.menu import commands_publish
from bot.telegram import ALLOWED_UPDATES, client


class Command(BaseCommand):
    help = "Point the Telegram bot's webhook at BASE_URL/telegram/webhook/ and publish its command menus."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("base_url", help="Public HTTPS origin of this deployment, e.g. https://mlrouter.example")
        parser.add_argument("--drop-pending", action="store_true", help="Discard updates Telegram still holds.")

    def handle(self, *args, base_url: str, drop_pending: bool, **options) -> None:
        if not settings.TELEGRAM_WEBHOOK_SECRET:
            raise CommandError("TELEGRAM_WEBHOOK_SECRET is not set: the webhook refuses every call without it.")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", settings.TELEGRAM_WEBHOOK_SECRET):
            raise CommandError("TELEGRAM_WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and - (1 to 256 of them).")
        if not settings.TELEGRAM_BOT_TOKEN:
            raise CommandError("TELEGRAM_BOT_TOKEN is not set.")
        url = f"{base_url.rstrip('/')}/telegram/webhook/"
        client().set_webhook(
            url=url,
            secret_token=settings.TELEGRAM_WEBHOOK_SECRET,
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=drop_pending or None,
        )
        commands_publish()
        self.stdout.write(f"Webhook set to {url}")
