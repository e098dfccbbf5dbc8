from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from accounts.models import Account
from accounts.services import account_set_status
from billing.models import Hold, LedgerEntry
from billing.selectors import ledger_sum, open_holds_sum
from billing.services import AccountInactive, InsufficientFunds, hold_place, hold_release, hold_settle
from tests.factories import funded_account

pytestmark = pytest.mark.usefixtures("money_path")


@pytest.mark.django_db
def test_a_hold_reserves_funds_and_settling_charges_the_real_cost_once():
    account = funded_account("1.00")
    hold = hold_place(account_id=account.pk, amount=Decimal("0.30"), reference="gen-a")
    account.refresh_from_db()
    assert (account.balance, account.held, account.available) == (Decimal("1"), Decimal("0.3"), Decimal("0.7"))
    assert hold.expires_at > hold.created_at

    entry = hold_settle(reference="gen-a", cost=Decimal("0.0000066"))
    again = hold_settle(reference="gen-a", cost=Decimal("0.25"))
    account.refresh_from_db()
    assert again.pk == entry.pk
    assert entry.amount == Decimal("-0.0000066000")
    assert entry.idempotency_key == "charge:gen-a"
    assert (account.balance, account.held) == (Decimal("0.9999934000"), Decimal("0"))
    assert LedgerEntry.objects.filter(kind="charge", account=account).count() == 1
    assert Hold.objects.get(reference="gen-a").ledger_entry == entry


@pytest.mark.django_db
def test_a_charge_never_exceeds_its_hold():
    account = funded_account("1.00")
    hold_place(account_id=account.pk, amount=Decimal("0.20"), reference="gen-b")
    entry = hold_settle(reference="gen-b", cost=Decimal("0.50"))
    assert entry.amount == Decimal("-0.20")


@pytest.mark.django_db
def test_releasing_returns_the_funds_without_a_charge_and_only_once():
    account = funded_account("1.00")
    hold_place(account_id=account.pk, amount=Decimal("0.40"), reference="gen-c")
    assert hold_release(reference="gen-c", reason="upstream failed") is True
    assert hold_release(reference="gen-c", reason="again") is False
    account.refresh_from_db()
    assert (account.balance, account.held) == (Decimal("1"), Decimal("0"))
    assert not LedgerEntry.objects.filter(kind="charge").exists()
    assert Hold.objects.get(reference="gen-c").close_reason == "upstream failed"


@pytest.mark.django_db
def test_it_refuses_a_hold_below_the_minimum_balance(settings):
    settings.MIN_BALANCE_USD = Decimal("0.10")
    account = funded_account("0.0999999999")
    with pytest.raises(InsufficientFunds) as exc:
        hold_place(account_id=account.pk, amount=Decimal("0.0000001"), reference="gen-d")
    assert exc.value.available == Decimal("0.0999999999")
    assert not Hold.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_hold_larger_than_the_available_balance():
    account = funded_account("1.00")
    hold_place(account_id=account.pk, amount=Decimal("0.80"), reference="gen-e")
    with pytest.raises(InsufficientFunds) as exc:
        hold_place(account_id=account.pk, amount=Decimal("0.21"), reference="gen-f")
    assert exc.value.available == Decimal("0.20")


@pytest.mark.django_db
def test_it_refuses_a_hold_for_a_suspended_account():
    account = funded_account("5.00")
    account_set_status(account=account, status=Account.Status.SUSPENDED)
    with pytest.raises(AccountInactive):
        hold_place(account_id=account.pk, amount=Decimal("0.01"), reference="gen-h")


@pytest.mark.django_db(transaction=True)
def test_fifty_threads_placing_holds_never_exceed_the_balance(settings):
    settings.MIN_BALANCE_USD = Decimal("0.10")
    account = funded_account("1.00")
    barrier = threading.Barrier(50)
    placed: list[str] = []
    refused: list[str] = []

    def place(i: int) -> None:
        try:
            barrier.wait()
            hold_place(account_id=account.pk, amount=Decimal("0.07"), reference=f"gen-race-{i}")
            placed.append(f"gen-race-{i}")
        except InsufficientFunds:
            refused.append(f"gen-race-{i}")
        finally:
            connection.close()

    threads = [threading.Thread(target=place, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    account.refresh_from_db()
    # $1.00 covers 13 holds of $0.07 ($0.91): the 14th would leave $0.02 < max(0.07, 0.10).
    assert len(placed) == 13
    assert len(refused) == 37
    assert account.held == Decimal("0.91") == open_holds_sum(account)
    assert account.available >= 0

    for reference in placed:
        hold_settle(reference=reference, cost=Decimal("0.07"))
    account.refresh_from_db()
    assert account.balance == Decimal("0.09") == ledger_sum(account)
    assert account.held == Decimal("0")


@pytest.mark.django_db(transaction=True)
def test_a_holds_unflushed_commit_stays_with_its_own_transaction(money_path):
    # Alone, the placement is its own transaction and asks for an asynchronous commit for that
    # transaction only: the connection it ran on is back to durable commits for the charge that follows.
    account = funded_account("1.00")
    connection.ensure_connection()
    hold_place(account_id=account.pk, amount=Decimal("0.10"), reference="gen-sync")
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    hold_settle(reference="gen-sync", cost=Decimal("0.05"))
    account.refresh_from_db()
    assert (account.balance, account.held) == (Decimal("0.95"), Decimal("0"))
