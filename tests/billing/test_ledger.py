from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from billing.models import LedgerEntry
from billing.selectors import ledger_sum
from billing.services import (
    IdempotencyConflict,
    InsufficientFunds,
    ledger_adjust,
    ledger_credit,
    ledger_refund,
)
from tests.factories import AccountFactory, UserFactory


@pytest.mark.django_db
def test_a_credit_appends_an_entry_and_moves_the_balance_exactly():
    account = AccountFactory()
    first = ledger_credit(account=account, amount=Decimal("10.00"), idempotency_key="t:1", memo="first")
    second = ledger_credit(account=account, amount="0.0000000001", idempotency_key="t:2")
    account.refresh_from_db()
    assert first.balance_after == Decimal("10.0000000000")
    assert second.balance_after == Decimal("10.0000000001")
    assert account.balance == Decimal("10.0000000001")
    assert ledger_sum(account) == account.balance
    assert first.kind == LedgerEntry.Kind.TOPUP


@pytest.mark.django_db
def test_replaying_an_idempotency_key_credits_once():
    account = AccountFactory()
    first = ledger_credit(account=account, amount="5", idempotency_key="payment:abc")
    again = ledger_credit(account=account, amount="5", idempotency_key="payment:abc")
    account.refresh_from_db()
    assert again.pk == first.pk
    assert again.replayed is True
    assert account.balance == Decimal("5")
    assert LedgerEntry.objects.filter(account=account).count() == 1


@pytest.mark.django_db
def test_reusing_a_key_for_another_amount_or_account_is_a_conflict():
    account, other = AccountFactory(), AccountFactory()
    ledger_credit(account=account, amount="5", idempotency_key="payment:abc")
    with pytest.raises(IdempotencyConflict):
        ledger_credit(account=account, amount="6", idempotency_key="payment:abc")
    with pytest.raises(IdempotencyConflict):
        ledger_credit(account=other, amount="5", idempotency_key="payment:abc")
    other.refresh_from_db()
    assert other.balance == Decimal(0)


@pytest.mark.django_db(transaction=True)
def test_racing_credits_with_the_same_key_credit_once():
    account = AccountFactory()
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def credit():
        try:
            barrier.wait()
            entry = ledger_credit(account=account, amount="2.50", idempotency_key="webhook:race")
            outcomes.append("replay" if entry.replayed else "credit")
        finally:
            connection.close()

    threads = [threading.Thread(target=credit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    account.refresh_from_db()
    assert sorted(outcomes) == ["credit"] + ["replay"] * 7
    assert account.balance == Decimal("2.50")
    assert LedgerEntry.objects.filter(idempotency_key="webhook:race").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "-1", "-0.0000000001"])
def test_a_credit_must_be_positive(amount):
    with pytest.raises(ValueError):
        ledger_credit(account=AccountFactory(), amount=amount, idempotency_key=f"bad:{amount}")
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_an_adjustment_records_the_operator_and_cannot_make_available_negative():
    operator = UserFactory()
    account = AccountFactory()
    ledger_credit(account=account, amount="3", idempotency_key="t:fund")
    entry = ledger_adjust(
        account=account, amount="-1.25", idempotency_key="adj:1", memo="goodwill", created_by=operator
    )
    assert entry.created_by == operator
    assert entry.balance_after == Decimal("1.75")
    with pytest.raises(InsufficientFunds):
        ledger_adjust(account=account, amount="-1.76", idempotency_key="adj:2", memo="too much")
    with pytest.raises(ValueError):
        ledger_adjust(account=account, amount="1", idempotency_key="adj:3", memo="  ")
    account.refresh_from_db()
    assert account.balance == Decimal("1.75")


@pytest.mark.django_db
def test_refunds_are_signed_entries_of_their_own_kind():
    account = AccountFactory()
    ledger_credit(account=account, amount="3", idempotency_key="t:fund")
    back = ledger_refund(account=account, amount="0.5", idempotency_key="refund:gen-1", reference="gen-1")
    out = ledger_refund(account=account, amount="-3.5", idempotency_key="refund:pay-1", reference="pay-1")
    account.refresh_from_db()
    assert (back.kind, back.amount, out.amount) == ("refund", Decimal("0.5"), Decimal("-3.5"))
    assert account.balance == Decimal("0")


@pytest.mark.django_db
def test_the_model_refuses_to_update_or_delete_an_entry():
    entry = ledger_credit(account=AccountFactory(), amount="1", idempotency_key="t:1")
    entry.memo = "rewritten"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        LedgerEntry.objects.filter(pk=entry.pk).update(memo="x")
    with pytest.raises(TypeError):
        LedgerEntry.objects.filter(pk=entry.pk).delete()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement", ["UPDATE billing_ledgerentry SET amount = 1000", "DELETE FROM billing_ledgerentry"]
)
def test_the_database_refuses_a_stray_update_or_delete(statement):
    entry = ledger_credit(account=AccountFactory(), amount="1", idempotency_key="t:1")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert LedgerEntry.objects.get(pk=entry.pk).amount == Decimal("1")
