"""Print the deep link that attaches a customer's Telegram chat to an account an operator created."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Account
from bot.links import LINK_TTL_SECONDS, link_token_make


class Command(BaseCommand):
    help = "Print a t.me link that attaches the opener's chat to ACCOUNT_ID (valid for 7 days)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account_id", type=int)

    def handle(self, *args, account_id: int, **options) -> None:
        account = Account.objects.filter(pk=account_id).first()
        if account is None:
            raise CommandError(f"no account #{account_id}")
        if account.telegram_chat_id is not None:
            raise CommandError(f"account #{account_id} is already attached to a Telegram chat")
        username = getattr(settings, "TELEGRAM_BOT_USERNAME", "ML_Router_bot")
        self.stderr.write(f"Valid for {LINK_TTL_SECONDS // 86400} days; send it to the customer.")
        self.stdout.write(f"https://t.me/{username}?start={link_token_make(account.pk)}")
