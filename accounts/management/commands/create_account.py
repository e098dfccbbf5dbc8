from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.services import account_create


class Command(BaseCommand):
    help = "Create a customer account and print its id."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--telegram-chat-id", type=int, default=None)

    def handle(self, *args, **options) -> None:
        if not options["name"].strip():
            raise CommandError("--name must not be empty")
        try:
            account = account_create(
                name=options["name"].strip(), email=options["email"], telegram_chat_id=options["telegram_chat_id"]
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
        self.stdout.write(str(account.pk))
