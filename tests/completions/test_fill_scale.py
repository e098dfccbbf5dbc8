"""`manage.py fill_scale`: generated history whose balances are their ledgers' sums."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum

from accounts.models import Account, ApiKey
from billing.models import LedgerEntry
from completions.models import Generation

pytestmark = pytest.mark.django_db


def test_fill_scale_writes_consistent_accounts_keys_generations_and_ledger():
    call_command("fill_scale", "--accounts", "7", "--generations", "60", "--ledger", "50", stdout=StringIO())

    assert (Account.objects.count(), ApiKey.objects.count(), Generation.objects.count()) == (7, 14, 60)
    assert LedgerEntry.objects.count() == 50
    for account in Account.objects.all():
        entries = LedgerEntry.objects.filter(account=account).order_by("id")
        assert account.balance == entries.aggregate(total=Sum("amount"))["total"]
        running = 0
        for entry in entries:
            running += entry.amount
            assert entry.balance_after == running
    # Each charge names its generation, on the same account, for exactly its cost.
    for entry in LedgerEntry.objects.filter(kind="charge"):
        generation = Generation.objects.get(pk=entry.reference)
        assert (generation.account_id, -generation.cost) == (entry.account_id, entry.amount)
        assert entry.idempotency_key == f"charge:{generation.pk}"
