from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account
from billing.services import BillingError
from billing.topups import topup_operator
from core.usd import decimal_text


def parse_usd(text: str) -> Decimal:
    """Parse a positive USD amount given on the command line."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise CommandError(f"amount {text!r} is not a number")
    if not amount.is_finite() or amount <= 0:
        raise CommandError(f"amount {text!r} must be a positive number of USD")
    if amount.as_tuple().exponent < -10 or amount >= Decimal("1e9"):
        raise CommandError(f"amount {text!r} has more than 10 decimal places or is too large")
    return amount


class Command(BaseCommand):
    help = "Credit an account's balance (a top-up entry in the ledger) and print the new balance."

    def add_arguments(self, parser) -> None:
        parser.add_argument("account_id", type=int)
        parser.add_argument("amount", help="USD, e.g. 10 or 2.50")
        parser.add_argument("--memo", default="")
        parser.add_argument(
            "--idempotency-key", default="", help="Replaying the same key credits once (default: a new key)."
        )

    def handle(self, *args, **options) -> None:
        amount = parse_usd(options["amount"])
        account = Account.objects.filter(pk=options["account_id"]).first()
        if account is None:
            raise CommandError(f"account {options['account_id']} does not exist")
        key = options["idempotency_key"] or f"cli-topup:{uuid.uuid4()}"
        try:
            entry = topup_operator(
                account=account, amount=amount, idempotency_key=key, memo=options["memo"] or "top-up from the CLI"
            )
        except BillingError as exc:
            raise CommandError(str(exc))
        verb = "already credited" if entry.replayed else "credited"
        self.stderr.write(f"{verb} {decimal_text(entry.amount)} USD (idempotency key {key})")
        self.stdout.write(decimal_text(entry.balance_after))
