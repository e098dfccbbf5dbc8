"""PostgreSQL's side of the single-statement money path (the ORM path has no such statements)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from billing.models import Hold, LedgerEntry
from billing.services import hold_place, hold_settle
from tests.factories import funded_account


@pytest.mark.django_db
def test_postgresql_prepares_the_hold_and_charge_statements_instead_of_planning_them_per_request():
    account = funded_account("1.00")
    for n in range(6):
        hold_place(account_id=account.pk, amount=Decimal("0.01"), reference=f"gen-prep-{n}")
        hold_settle(reference=f"gen-prep-{n}", cost=Decimal("0.001"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(f'INSERT INTO "{Hold._meta.db_table}"' in statement for statement in prepared)
    assert any(f'INSERT INTO "{LedgerEntry._meta.db_table}"' in statement for statement in prepared)


@pytest.mark.django_db
def test_a_placed_hold_reports_the_available_balance_it_left():
    account = funded_account("1.00")
    hold = hold_place(account_id=account.pk, amount=Decimal("0.25"), reference="gen-left")
    assert hold.available_after == Decimal("0.75")
