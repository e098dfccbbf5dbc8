"""`manage.py fill_scale`: generated history whose balances are their ledgers' sums."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Account, ApiKey
from accounts.services import api_key_create
from billing.models import LedgerEntry
from billing.services import hold_place, hold_settle
from billing.statements import RowInsert, RowUpdate
from completions.models import Generation
from tests.factories import PriceFactory, funded_account

# The command writes over two connections of its own, which see only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


def _fill(*args: str) -> None:
    call_command("fill_scale", *args, stdout=StringIO())


def _schema() -> list[tuple[str, str]]:
    """The big tables' indexes and constraints, by name and definition."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%(tables)s)
            UNION ALL
            SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid::regclass::text = ANY(%(tables)s)
            ORDER BY 1, 2
            """,
            {"tables": ["completions_generation", "billing_ledgerentry"]},
        )
        return cursor.fetchall()


def test_fill_scale_writes_consistent_accounts_keys_generations_and_ledger():
    _fill("--accounts", "7", "--generations", "60", "--ledger", "50")

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


def test_every_generation_has_the_charges_its_cost_calls_for():
    _fill("--accounts", "7", "--generations", "60", "--ledger", "50")

    charges = Counter(LedgerEntry.objects.filter(kind="charge").values_list("reference", flat=True))
    uncharged = Generation.objects.exclude(pk__in=charges)
    # 43 charges for 60 generations: the other 17 failed and cost nothing, spread over the history.
    assert set(charges.values()) == {1} and len(charges) == 43
    assert uncharged.count() == 17
    assert set(uncharged.values_list("status", "cost")) == {(Generation.Status.FAILED, Decimal(0))}
    assert set(Generation.objects.filter(pk__in=charges).values_list("status", flat=True)) == {"completed"}
    assert uncharged.filter(started_at__lt=Generation.objects.order_by("started_at")[30].started_at).count() >= 8


def test_history_is_spread_over_exactly_the_accounts_asked_for_and_leaves_others_alone():
    existing = funded_account("25.00")

    _fill("--accounts", "4", "--generations", "40", "--ledger", "44", "--keys-per-account", "1")

    existing.refresh_from_db()
    assert existing.balance == Decimal("25.00")
    assert list(LedgerEntry.objects.filter(account=existing).values_list("amount", flat=True)) == [Decimal("25.00")]
    filled = Account.objects.exclude(pk=existing.pk)
    assert filled.count() == 4 and ApiKey.objects.filter(account__in=filled).count() == 4
    per_account = Counter(Generation.objects.values_list("account_id", flat=True))
    assert per_account == {account.pk: 10 for account in filled}
    for account in filled:
        assert LedgerEntry.objects.filter(account=account, kind="charge").count() == 10
        assert account.balance == LedgerEntry.objects.filter(account=account).aggregate(t=Sum("amount"))["t"]
    # The history ends when the fill starts, after what was there: the newest entry is also the last written.
    assert LedgerEntry.objects.latest("created_at").pk == LedgerEntry.objects.latest("pk").pk


def _generation_page(pk: str | None = None) -> int:
    """The heap page a generation is on (the last page any generation is on, without `pk`)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT max((ctid::text::point)[0]::bigint) FROM completions_generation"
            " WHERE %(pk)s IS NULL OR id = %(pk)s",
            {"pk": pk},
        )
        return cursor.fetchone()[0]


def test_a_request_after_the_history_is_written_at_the_tables_end_and_settled_in_place():
    _fill("--accounts", "5", "--generations", "3000", "--ledger", "2000")
    history_ends = _generation_page()  # its last page may have room left: the end of the table
    account, price = funded_account("5.00"), PriceFactory()
    reference = "gen-1796000000-abcdefghijklmnopqrst"
    pending = {
        "id": reference,
        "account_id": account.pk,
        "api_key_id": api_key_create(account=account)[0].pk,
        "model_id": price.model_id,
        "price_id": price.pk,
        "hold_amount": Decimal("0.01"),
        "started_at": timezone.now(),
        "request_id": "3f2a9c1e8b7d4e6fa0b1c2d3e4f5a6b7",
    }
    settled = {
        "status": Generation.Status.COMPLETED,
        "finish_reason": "stop",
        "upstream_id": "chatcmpl-0123456789abcdefghijklmnopqrstuv",
        "prompt_tokens": 1200,
        "completion_tokens": 345,
        "usage_source": Generation.UsageSource.UPSTREAM,
        "latency_ms": 1834,
        "finished_at": timezone.now(),
    }

    hold_place(account_id=account.pk, amount=Decimal("0.01"), reference=reference, also=RowInsert(Generation, pending))
    placed = _generation_page(reference)
    hold_settle(reference=reference, cost=Decimal("0.004"), also=RowUpdate(Generation, reference, settled, "cost"))

    # Not into a gap of a page of history (a cold page per request, and no room left there for its settlement),
    # and settled on its own page: an update PostgreSQL makes without writing the table's indexes.
    assert placed >= history_ends
    assert _generation_page(reference) == placed


def test_the_big_tables_get_back_every_index_and_constraint():
    before = _schema()

    _fill("--accounts", "3", "--generations", "30", "--ledger", "20")

    assert _schema() == before
    assert any(name == "billing_ledgerentry_idempotency_key_key" for name, _ in before)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'completions_generation'")
        assert cursor.fetchone()[0] == ["fillfactor=90"]


def test_a_ledger_with_more_charges_than_generations_is_refused():
    with pytest.raises(CommandError, match="at most one charge per generation"):
        _fill("--accounts", "2", "--generations", "10", "--ledger", "13")
