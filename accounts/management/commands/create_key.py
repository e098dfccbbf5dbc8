from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Issue an API key for an account; the secret is printed alone on the last line, once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("account_id", type=int)
        parser.add_argument("--name", default="")
        parser.add_argument("--rpm", type=int, default=None, help="Requests per minute (default from settings).")

    def handle(self, *args, **options) -> None:
        if options["rpm"] is not None and options["rpm"] < 1:
            raise CommandError("--rpm must be a positive integer")
        account = Account.objects.filter(pk=options["account_id"]).first()
        if account is None:
            raise CommandError(f"account {options['account_id']} does not exist")
        api_key, secret = api_key_create(account=account, name=options["name"], rpm_limit=options["rpm"])
        self.stderr.write(f"key {api_key.prefix}… for account {account.pk}, {api_key.rpm_limit} RPM; shown once:")
        self.stdout.write(secret)
