"""The two implementations of the money path leave the same rows.

PostgreSQL places and settles a hold in one statement each (billing/statements.py); every other database
(the SQLite demo) goes through the ORM (billing/services.py). Whatever sequence of holds, settlements and
releases runs, with the caller's own rows written alongside, both end with equal balances, holds, ledger
entries and rows.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.services import api_key_create
from billing import services
from billing.models import Hold, LedgerEntry
from billing.services import BillingError, hold_place, hold_release, hold_settle
from billing.statements import RowInsert, RowUpdate
from completions.models import Generation
from tests.factories import PriceFactory, funded_account

amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("3"), places=10)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("place"), amounts),
        st.tuples(st.just("settle"), st.integers(min_value=0, max_value=9), amounts),
        st.tuples(st.just("release"), st.integers(min_value=0, max_value=9)),
    ),
    min_size=1,
    max_size=12,
)


def _run(path: str, ops: list[tuple], monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run `ops` on a fresh account through one path; return what it left, without ids or clocks."""
    monkeypatch.setattr(services, "is_postgresql", lambda: path == "single-statement")
    account = funded_account("5.00")
    price = PriceFactory()
    key, _ = api_key_create(account=account)
    placed: list[str] = []
    refused = 0
    for op in ops:
        if op[0] == "place":
            reference = f"gen-{path}-{account.pk}-{len(placed)}"
            row = {
                "id": reference,
                "account_id": account.pk,
                "api_key_id": key.pk,
                "model_id": price.model_id,
                "price_id": price.pk,
                "hold_amount": op[1],
                "user": "u",
                "started_at": timezone.now(),
            }
            try:
                hold_place(account_id=account.pk, amount=op[1], reference=reference, also=RowInsert(Generation, row))
                placed.append(reference)
            except BillingError:
                refused += 1
        elif op[0] == "settle" and placed:
            reference = placed[op[1] % len(placed)]
            changes = {"status": Generation.Status.COMPLETED, "prompt_tokens": 7, "finish_reason": "stop"}
            try:
                hold_settle(reference=reference, cost=op[2], also=RowUpdate(Generation, reference, changes, "cost"))
            except BillingError:  # released before: nothing to charge, on either path
                refused += 1
        elif op[0] == "release" and placed:
            hold_release(reference=placed[op[1] % len(placed)], reason="released")
    account.refresh_from_db()
    return {
        "account": (account.balance, account.held),
        "refused": refused,
        "holds": [
            (h.amount, h.status, h.close_reason, h.ledger_entry.amount if h.ledger_entry else None)
            for h in Hold.objects.filter(account=account).order_by("id")
        ],
        "entries": [
            (e.kind, e.amount, e.balance_after, e.reference.rsplit("-", 1)[-1], e.idempotency_key.split(":")[0])
            for e in LedgerEntry.objects.filter(account=account).order_by("id")
        ],
        "generations": [
            (g.status, g.hold_amount, g.cost, g.prompt_tokens, g.finish_reason, g.user)
            for g in Generation.objects.filter(account=account).order_by("started_at", "id")
        ],
    }


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_the_single_statement_and_orm_paths_leave_equal_rows(ops, monkeypatch):
    assert _run("single-statement", ops, monkeypatch) == _run("orm", ops, monkeypatch)
