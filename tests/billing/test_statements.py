"""PostgreSQL's side of the single-statement money path (the ORM path has no such statements)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts.services import api_key_create
from billing.models import Hold, LedgerEntry
from billing.services import hold_place, hold_settle
from billing.statements import RowInsert, place_also_shape, place_params, place_sql
from bot.models import ProcessedUpdate
from completions.models import Generation
from tests.factories import PriceFactory, funded_account


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


def _generation_row(reference: str, *, full: bool) -> dict:
    account = funded_account("1.00")
    price = PriceFactory()
    key, _ = api_key_create(account=account)
    row = {
        "id": reference,
        "account_id": account.pk,
        "api_key_id": key.pk,
        "model_id": price.model_id,
        "price_id": price.pk,
        "started_at": timezone.now(),
    }
    if full:  # what a request's settlement gives (completions/settlement.py)
        row |= {
            "surface": "embeddings",
            "stream": True,
            "user": "u-1",
            "origin": "https://example.com",
            "app": "App",
            "request_id": "req-1",
            "hold_amount": Decimal("0.0123456789"),
        }
    return row


@pytest.mark.django_db
@pytest.mark.parametrize("full", [True, False], ids=["request-fields", "required-fields-only"])
def test_a_generation_placed_with_its_hold_equals_the_row_the_orm_creates(full):
    row = _generation_row("gen-statement", full=full)
    hold_place(
        account_id=row["account_id"], amount=Decimal("0.01"), reference=row["id"], also=RowInsert(Generation, row)
    )
    Generation.objects.create(**(row | {"id": "gen-orm"}))
    placed, created = (Generation.objects.filter(pk=pk).values().get() for pk in ("gen-statement", "gen-orm"))
    assert placed.pop("id") == "gen-statement"
    assert created.pop("id") == "gen-orm"
    assert placed == created


def test_the_defaults_a_row_leaves_out_are_spelled_in_the_statement_not_bound():
    row = {"id": "g", "account_id": 1, "api_key_id": 1, "model_id": 1, "price_id": 1, "started_at": timezone.now()}
    also = RowInsert(Generation, row)
    sql = place_sql(unflushed=True, also=place_also_shape(also))
    params = place_params(amount=1, account_id=1, needed=1, reference="g", now=1, expires=1, also=also)
    assert "%(x_cost)s" not in sql
    assert "%(x_status)s" not in sql
    assert "0::numeric" in sql
    assert "'pending'::text" in sql
    assert sorted(k for k in params if k.startswith("x_")) == [f"x_{name}" for name in sorted(row)]


@pytest.mark.django_db
def test_a_callable_default_a_row_leaves_out_is_worked_out_for_each_row():
    account = funded_account("1.00")
    spans = []
    for n in (1, 2):
        before = timezone.now()
        also = RowInsert(ProcessedUpdate, {"update_id": n})
        hold_place(account_id=account.pk, amount=Decimal("0.01"), reference=f"gen-now-{n}", also=also)
        spans.append((before, timezone.now()))
    for n, (before, after) in zip((1, 2), spans, strict=True):
        assert before <= ProcessedUpdate.objects.get(pk=n).received_at <= after
