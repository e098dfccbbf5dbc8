from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account
from core.usd import decimal_text


class Command(BaseCommand):
    help = "Print an account's balance in USD (and, on stderr, what is held and available)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("account_id", type=int)

    def handle(self, *args, **options) -> None:
        account = Account.objects.filter(pk=options["account_id"]).first()
        if account is None:
            raise CommandError(f"account {options['account_id']} does not exist")
        # decimal_text: `0`, never the column's `0E-10`; every digit of the amount, no trailing zeros.
        self.stderr.write(f"held {decimal_text(account.held)} USD, available {decimal_text(account.available)} USD")
        self.stdout.write(decimal_text(account.balance))
