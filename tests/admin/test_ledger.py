"""The ledger in admin is read-only for everyone, and easy to narrow to one account or one entry."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import LedgerEntry
from billing.services import ledger_credit
from tests.factories import AccountFactory, funded_account

from .helpers import admin_url

pytestmark = pytest.mark.django_db


def test_ledger_entries_cannot_be_added_changed_or_deleted_even_by_a_superuser(operator_client):
    account = funded_account("10.00")
    entry = LedgerEntry.objects.get(account=account)

    change = operator_client.post(
        admin_url(entry, "change", entry.pk), {"amount": "1000", "memo": "tampered", "kind": "topup"}
    )
    delete_page = operator_client.get(admin_url(entry, "delete", entry.pk))
    delete = operator_client.post(admin_url(entry, "delete", entry.pk), {"post": "yes"})
    add = operator_client.post(admin_url(LedgerEntry, "add"), {"account": account.pk, "amount": "5"})

    assert (change.status_code, delete_page.status_code, delete.status_code, add.status_code) == (403, 403, 403, 403)
    entry.refresh_from_db()
    assert (entry.amount, entry.memo) == (Decimal("10.0000000000"), "")
    assert LedgerEntry.objects.count() == 1


def test_the_change_page_shows_an_entry_read_only(operator_client):
    account = funded_account("10.00")
    entry = LedgerEntry.objects.get(account=account)
    response = operator_client.get(admin_url(entry, "change", entry.pk))
    assert response.status_code == 200
    assert response.context["adminform"].form.fields == {}
    assert "$10.00" in response.content.decode()


def test_the_account_link_narrows_the_ledger_to_one_account(operator_client):
    mine, other = funded_account("10.00"), funded_account("3.00")
    ledger_credit(account=mine, amount=Decimal("2"), idempotency_key="t:2")
    response = operator_client.get(admin_url(LedgerEntry, "changelist"), {"account__id__exact": mine.pk})
    assert {e.account_id for e in response.context["cl"].result_list} == {mine.pk}
    assert len(response.context["cl"].result_list) == 2
    assert other.pk not in {e.account_id for e in response.context["cl"].result_list}


@pytest.mark.parametrize(
    ("term", "memo"),
    [("admin-topup:abc", "by key"), ("gen-xyz", "by reference"), ("chargeback", "chargeback 2024")],
)
def test_search_finds_an_entry_by_key_reference_or_memo(operator_client, term, memo):
    account = AccountFactory()
    ledger_credit(account=account, amount=Decimal("1"), idempotency_key="other", memo="noise")
    keys = {"by key": "admin-topup:abc", "by reference": "k2", "chargeback 2024": "k3"}
    wanted = ledger_credit(
        account=account,
        amount=Decimal("1"),
        idempotency_key=keys[memo],
        reference="gen-xyz" if memo == "by reference" else "",
        memo=memo,
    )
    response = operator_client.get(admin_url(LedgerEntry, "changelist"), {"q": term})
    assert [e.pk for e in response.context["cl"].result_list] == [wanted.pk]


def test_search_by_number_finds_the_accounts_entries(operator_client):
    mine, other = funded_account("10.00", name="Mine"), funded_account("3.00", name="Other")
    response = operator_client.get(admin_url(LedgerEntry, "changelist"), {"q": str(mine.pk)})
    assert [e.account_id for e in response.context["cl"].result_list] == [mine.pk]
    assert other.pk != mine.pk


def test_the_ledger_filters_by_kind(operator_client):
    account = funded_account("10.00")
    promo = ledger_credit(account=account, amount=Decimal("1"), idempotency_key="p", kind=LedgerEntry.Kind.PROMO)
    response = operator_client.get(admin_url(LedgerEntry, "changelist"), {"kind__exact": "promo"})
    assert [e.pk for e in response.context["cl"].result_list] == [promo.pk]
