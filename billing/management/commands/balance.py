from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account


class Command(BaseCommand):
    help = "Print an account's balance in USD (and, on stderr, what is held and available)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("account_id", type=int)

    def handle(self, *args, **options) -> None:
        account = Account.objects.filter(pk=options["account_id"]).first()
        if account is None:
            raise CommandError(f"account {options['account_id']} does not exist")
        self.stderr.write(f"held {account.held} USD, available {account.available} USD")
        self.stdout.write(f"{account.balance}")
