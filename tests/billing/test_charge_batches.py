"""A batch of charges (`hold_settle_many`, one statement) leaves the same rows as settling them one by one.

Under gevent a process's concurrent charges share one statement (core/group_commit.py). Whatever the
charges — several on one account, capped at their hold, replayed, twice in the same batch — the batch
must write the entries, running balances, holds, accounts and generations that `hold_settle` writes
alone; a bad charge fails alone, and a database outage fails every charge as it would alone.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import DataError, OperationalError, connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Account
from accounts.services import api_key_create
from billing import services
from billing.models import Hold, LedgerEntry
from billing.services import charge_new, hold_place, hold_settle, hold_settle_many
from billing.statements import RowInsert, RowUpdate
from completions.models import Generation
from core.db import DATABASE_DOWN
from tests.factories import PriceFactory, funded_account

amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("0.5"), places=10)
# (account, hold, cost, settled before the batch, twice in the batch)
charges = st.lists(
    st.tuples(st.integers(0, 2), amounts, amounts, st.booleans(), st.booleans()), min_size=1, max_size=10
)


class World:
    """Three funded accounts, each hold placed with its Generation as the relay places them."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.accounts = [funded_account("5.00") for _ in range(3)]
        self.price = PriceFactory()
        self.keys = [api_key_create(account=a)[0] for a in self.accounts]
        self.references: list[str] = []

    def place(self, account: int, amount: Decimal) -> str:
        reference = f"gen-{self.tag}-{self.accounts[0].pk}-{len(self.references)}"
        row = {
            "id": reference,
            "account_id": self.accounts[account].pk,
            "api_key_id": self.keys[account].pk,
            "model_id": self.price.model_id,
            "price_id": self.price.pk,
            "hold_amount": amount,
            "started_at": timezone.now(),
        }
        hold_place(account_id=row["account_id"], amount=amount, reference=reference, also=RowInsert(Generation, row))
        self.references.append(reference)
        return reference

    def rows(self) -> dict:
        """What the settlements left, without ids or clocks."""
        ids = [a.pk for a in self.accounts]
        return {
            "accounts": [(a.balance, a.held) for a in Account.objects.filter(pk__in=ids).order_by("pk")],
            "entries": [
                (ids.index(e.account_id), e.kind, e.amount, e.balance_after, self._n(e.reference), e.memo)
                for e in LedgerEntry.objects.filter(account_id__in=ids, kind="charge").order_by("id")
            ],
            "holds": [
                (h.status, h.close_reason, h.ledger_entry.amount if h.ledger_entry else None)
                for h in Hold.objects.filter(reference__in=self.references).order_by("id")
            ],
            "generations": [
                (g.cost, g.prompt_tokens, g.status, g.finish_reason)
                for g in Generation.objects.filter(pk__in=self.references).order_by("started_at")
            ],
        }

    def _n(self, reference: str) -> int:
        return self.references.index(reference)


def _finish(reference: str, tokens: int, finish_reason: str = "stop") -> RowUpdate:
    changes = {"status": Generation.Status.COMPLETED, "prompt_tokens": tokens, "finish_reason": finish_reason}
    return RowUpdate(Generation, reference, changes, charge_field="cost")


def _settle(world: World, plan: list[tuple], *, batched: bool) -> list[tuple]:
    references = [world.place(account, hold) for account, hold, *_ in plan]
    calls = []
    for n, (reference, (_, _, cost, before, twice)) in enumerate(zip(references, plan, strict=True)):
        call = {"reference": reference, "cost": cost, "memo": f"m{n}", "also": _finish(reference, n)}
        if before:
            hold_settle(**call)
        calls += [call, call] if twice else [call]
    if batched:
        results = hold_settle_many(charges=[charge_new(**call) for call in calls])
    else:
        results = [hold_settle(**call) for call in calls]
    return [(world._n(e.reference), e.amount, e.balance_after, e.memo) for e in results]


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=charges)
def test_a_batch_leaves_the_same_rows_as_settling_one_by_one(plan):
    alone, batch = World("alone"), World("batch")
    returned_alone = _settle(alone, plan, batched=False)
    returned_batch = _settle(batch, plan, batched=True)
    assert returned_batch == returned_alone
    assert batch.rows() == alone.rows()


@pytest.mark.django_db
def test_several_charges_on_one_account_each_record_the_balance_after_them():
    world = World("run")
    references = [world.place(0, Decimal("1.00")) for _ in range(3)]
    entries = hold_settle_many(
        charges=[charge_new(reference=r, cost=Decimal(cost)) for r, cost in zip(references, ["0.1", "0.2", "0.3"])]
    )
    assert [e.balance_after for e in entries] == [Decimal("4.9"), Decimal("4.7"), Decimal("4.4")]
    account = Account.objects.get(pk=world.accounts[0].pk)
    assert (account.balance, account.held) == (Decimal("4.4"), Decimal("0"))
    stored = LedgerEntry.objects.filter(account=account, kind="charge").order_by("id")
    assert [(e.amount, e.balance_after) for e in stored] == [
        (Decimal("-0.1"), Decimal("4.9")),
        (Decimal("-0.2"), Decimal("4.7")),
        (Decimal("-0.3"), Decimal("4.4")),
    ]


@pytest.mark.django_db
def test_a_batch_caps_each_charge_at_its_hold():
    world = World("cap")
    capped, under = world.place(0, Decimal("0.25")), world.place(0, Decimal("0.25"))
    entries = hold_settle_many(
        charges=[
            charge_new(reference=capped, cost=Decimal("9"), also=_finish(capped, 1)),
            charge_new(reference=under, cost=Decimal("0.05"), also=_finish(under, 2)),
        ]
    )
    assert [e.amount for e in entries] == [Decimal("-0.25"), Decimal("-0.05")]
    assert Generation.objects.get(pk=capped).cost == Decimal("0.25")
    account = Account.objects.get(pk=world.accounts[0].pk)
    assert (account.balance, account.held) == (Decimal("4.7"), Decimal("0"))


@pytest.mark.django_db
def test_a_replayed_charge_returns_the_first_entry_and_changes_nothing(caplog):
    world = World("replay")
    first, second = world.place(1, Decimal("0.5")), world.place(1, Decimal("0.5"))
    settled = hold_settle(reference=first, cost=Decimal("0.1"), also=_finish(first, 3))
    entries = hold_settle_many(
        charges=[
            charge_new(reference=first, cost=Decimal("0.4"), also=_finish(first, 99)),
            charge_new(reference=second, cost=Decimal("0.2"), also=_finish(second, 4)),
            charge_new(reference=second, cost=Decimal("0.3"), also=_finish(second, 98)),
        ]
    )
    assert entries[0].pk == settled.pk
    assert entries[1].pk == entries[2].pk
    assert [e.amount for e in entries] == [Decimal("-0.1"), Decimal("-0.2"), Decimal("-0.2")]
    assert LedgerEntry.objects.filter(reference__in=[first, second]).count() == 2
    assert [g.prompt_tokens for g in Generation.objects.filter(pk__in=[first, second]).order_by("pk")] == [3, 4]
    assert Account.objects.get(pk=world.accounts[1].pk).balance == Decimal("4.7")
    assert "one by one" not in caplog.text  # the batch's own statement settles a reference once


@pytest.mark.django_db
def test_a_bad_charge_fails_alone_and_the_others_are_settled():
    world = World("bad")
    good, bad, other = (world.place(n, Decimal("0.5")) for n in range(3))
    results = hold_settle_many(
        charges=[
            charge_new(reference=good, cost=Decimal("0.1"), also=_finish(good, 1)),
            charge_new(reference=bad, cost=Decimal("0.1"), also=_finish(bad, 2, finish_reason="x" * 33)),
            charge_new(reference=other, cost=Decimal("0.2"), also=_finish(other, 3)),
        ]
    )
    assert isinstance(results[1], DataError)
    assert [results[0].amount, results[2].amount] == [Decimal("-0.1"), Decimal("-0.2")]
    assert {h.reference: h.status for h in Hold.objects.filter(reference__in=[good, bad, other])} == {
        good: Hold.Status.SETTLED,
        bad: Hold.Status.OPEN,
        other: Hold.Status.SETTLED,
    }


@pytest.mark.django_db
def test_a_database_outage_fails_every_charge_as_it_fails_alone(monkeypatch):
    world = World("down")
    references = [world.place(n, Decimal("0.5")) for n in range(3)]

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "fetch_all", down)
    results = hold_settle_many(charges=[charge_new(reference=r, cost=Decimal("0.1")) for r in references])
    assert all(isinstance(result, DATABASE_DOWN) for result in results)
    assert set(Hold.objects.filter(reference__in=references).values_list("status", flat=True)) == {"open"}
    assert not LedgerEntry.objects.filter(reference__in=references).exists()


@pytest.mark.django_db(transaction=True)
def test_batches_racing_over_the_same_accounts_settle_every_charge_with_its_running_balance():
    # Each batch names its holds in another order and shares its accounts with the others.
    world = World("race")
    batches = [[world.place(n % 3, Decimal("0.01")) for n in range(12)] for _ in range(6)]
    barrier = threading.Barrier(len(batches))
    results: list = []

    def settle(references: list[str], turn: int) -> None:
        ordered = references[turn % 3 :] + references[: turn % 3]
        try:
            barrier.wait()
            results.extend(hold_settle_many(charges=[charge_new(reference=r, cost=Decimal("0.004")) for r in ordered]))
        finally:
            connection.close()

    threads = [threading.Thread(target=settle, args=(refs, turn)) for turn, refs in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r for r in results if not isinstance(r, LedgerEntry)] == []
    assert len(results) == 72
    for account in Account.objects.filter(pk__in=[a.pk for a in world.accounts]):
        entries = LedgerEntry.objects.filter(account=account).order_by("id")
        running = Decimal(0)
        for entry in entries:
            running += entry.amount
            assert entry.balance_after == running
        assert (account.balance, account.held) == (Decimal("5") - Decimal("0.096"), Decimal("0"))
