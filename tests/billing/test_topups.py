from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError

from billing.models import LedgerEntry, TopUp
from billing.topups import topup_operator
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_operator_top_up_credits_once_and_is_listed_as_a_paid_top_up():
    account = AccountFactory()
    for _ in range(2):  # the same form posted twice
        topup_operator(account=account, amount="12.50", idempotency_key="admin-topup:1", memo="wire")
    account.refresh_from_db()
    assert account.balance == Decimal("12.50")
    top_up = TopUp.objects.get(account=account)
    assert (top_up.method, top_up.status, top_up.amount_usd) == (
        TopUp.Method.OPERATOR,
        TopUp.Status.PAID,
        Decimal("12.50"),
    )


def test_an_operator_top_up_whose_record_fails_leaves_no_credit(monkeypatch):
    account = AccountFactory()

    def broken(*args, **kwargs):
        raise DatabaseError("the top-up table refused the row")

    monkeypatch.setattr(TopUp.objects, "get_or_create", broken)
    with pytest.raises(DatabaseError):
        topup_operator(account=account, amount="5", idempotency_key="admin-topup:2")
    account.refresh_from_db()
    assert account.balance == Decimal("0")
    assert not LedgerEntry.objects.filter(account=account).exists()
