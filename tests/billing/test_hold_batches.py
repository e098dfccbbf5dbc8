"""A batch of holds (`hold_place_many`, one statement) leaves the same rows as placing them one by one.

Under gevent a process's concurrent holds share one statement (core/group_commit.py). Whatever the
holds — several on one account, some refused for funds or a suspended account, a reference used twice —
the batch must place, refuse and record exactly what `hold_place` does alone in the batch's order; a bad
hold fails alone, and a database outage fails every hold as it would alone.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import gevent
import pytest
from django.db import DataError, OperationalError, connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Account
from accounts.services import api_key_create
from billing import services, statements
from billing.models import Hold, LedgerEntry
from billing.services import (
    AccountInactive,
    IdempotencyConflict,
    InsufficientFunds,
    charge_new,
    hold_place,
    hold_place_many,
    hold_settle_many,
    placement_new,
)
from billing.statements import RowInsert
from completions.models import Generation
from core.db import DATABASE_DOWN
from tests.factories import PriceFactory, funded_account

balances = st.sampled_from(["0.00", "0.05", "0.10", "0.15", "0.30", "0.50", "1.00"])
amounts = st.sampled_from([Decimal("0.05"), Decimal("0.1"), Decimal("0.2"), Decimal("0.3")]) | st.decimals(
    min_value=Decimal("0"), max_value=Decimal("0.4"), places=10
)
# (account, amount, reuse an earlier reference: rarely, as it sends the whole batch one by one)
holds = st.lists(st.tuples(st.integers(0, 2), amounts, st.sampled_from([False] * 7 + [True])), min_size=1, max_size=12)


class World:
    """Three accounts with the given balances (a suspended one when asked), holds placed with their Generation."""

    def __init__(self, tag: str, funds: list[str], suspended: int | None = None) -> None:
        self.tag = tag
        self.accounts = [funded_account(f) if f != "0.00" else funded_account("0.01") for f in funds]
        for account, f in zip(self.accounts, funds, strict=True):
            if f == "0.00":  # spent down through the ledger, as an account reaches zero
                services.ledger_adjust(account=account, amount="-0.01", idempotency_key=f"zero:{account.pk}", memo="z")
        if suspended is not None:
            Account.objects.filter(pk=self.accounts[suspended].pk).update(status=Account.Status.SUSPENDED)
        self.price = PriceFactory()
        self.keys = [api_key_create(account=a)[0] for a in self.accounts]
        self.references: list[str] = []

    def placement(self, account: int, amount: Decimal, reuse: bool, **row):
        if reuse and self.references:
            reference = self.references[len(self.references) // 2]
        else:
            reference = f"gen-{self.tag}-{self.accounts[0].pk}-{len(self.references)}"
        self.references.append(reference)
        values = {
            "id": reference,
            "account_id": self.accounts[account].pk,
            "api_key_id": self.keys[account].pk,
            "model_id": self.price.model_id,
            "price_id": self.price.pk,
            "hold_amount": amount,
            "started_at": timezone.now(),
            "user": "",
        }
        values.update(row)
        also = RowInsert(Generation, values)
        return {"account_id": values["account_id"], "amount": amount, "reference": reference, "also": also}

    def outcome(self, result) -> tuple:
        """What a placement returned, without ids or clocks."""
        if isinstance(result, Hold):
            return ("hold", self._account(result.account_id), result.amount, result.available_after)
        if isinstance(result, InsufficientFunds):
            return ("funds", result.available, result.needed)
        return (type(result).__name__,)

    def rows(self) -> dict:
        ids = [a.pk for a in self.accounts]
        return {
            "accounts": [(a.balance, a.held, a.status) for a in Account.objects.filter(pk__in=ids).order_by("pk")],
            "holds": [
                (self._account(h.account_id), h.amount, self.references.index(h.reference), h.status, h.close_reason)
                for h in Hold.objects.filter(account_id__in=ids).order_by("id")
            ],
            "generations": [
                (self._account(g.account_id), g.hold_amount, self.references.index(g.pk), g.status)
                for g in Generation.objects.filter(account_id__in=ids).order_by("started_at", "pk")
            ],
        }

    def _account(self, account_id: int) -> int:
        return [a.pk for a in self.accounts].index(account_id)


def _place(world: World, plan: list[tuple], *, batched: bool) -> list[tuple]:
    calls = [world.placement(*step) for step in plan]
    if batched:
        results = hold_place_many(placements=[placement_new(**call) for call in calls])
    else:
        results = []
        for call in calls:
            try:
                results.append(hold_place(**call))
            except Exception as exc:  # the outcome compared
                results.append(exc)
    return [world.outcome(r) for r in results]


@pytest.mark.django_db
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(funds=st.lists(balances, min_size=3, max_size=3), suspended=st.none() | st.integers(0, 2), plan=holds)
def test_a_batch_places_and_refuses_exactly_what_placing_one_by_one_does(funds, suspended, plan, caplog):
    caplog.clear()
    alone, batch = World("alone", funds, suspended), World("batch", funds, suspended)
    returned_alone = _place(alone, plan, batched=False)
    returned_batch = _place(batch, plan, batched=True)
    assert returned_batch == returned_alone
    assert batch.rows() == alone.rows()
    if len(plan) > 1 and len(set(batch.references)) == len(batch.references):
        assert "one by one" not in caplog.text  # the batch's own statement placed them


@pytest.mark.django_db
def test_holds_on_one_account_are_checked_in_order_against_what_the_earlier_ones_left(settings):
    settings.MIN_BALANCE_USD = Decimal("0.10")
    world = World("order", ["1.00", "1.00", "1.00"])
    calls = [world.placement(0, Decimal(a), False) for a in ["0.60", "0.30", "0.20", "0.05", "0.10"]]
    results = hold_place_many(placements=[placement_new(**call) for call in calls])
    # 1.00 - 0.60 - 0.30 = 0.10 left: 0.20 is refused, 0.05 still fits (it needs the 0.10 minimum), 0.10 does not.
    assert [world.outcome(r) for r in results] == [
        ("hold", 0, Decimal("0.60"), Decimal("0.40")),
        ("hold", 0, Decimal("0.30"), Decimal("0.10")),
        ("funds", Decimal("0.10"), Decimal("0.20")),
        ("hold", 0, Decimal("0.05"), Decimal("0.05")),
        ("funds", Decimal("0.05"), Decimal("0.10")),
    ]
    account = Account.objects.get(pk=world.accounts[0].pk)
    assert (account.balance, account.held) == (Decimal("1.00"), Decimal("0.95"))
    assert sorted(Hold.objects.filter(account=account).values_list("amount", flat=True)) == [
        Decimal("0.05"),
        Decimal("0.30"),
        Decimal("0.60"),
    ]
    assert Generation.objects.filter(account=account).count() == 3


@pytest.mark.django_db
def test_a_suspended_account_refuses_its_holds_alone():
    world = World("inactive", ["1.00", "1.00", "1.00"], suspended=1)
    calls = [world.placement(n, Decimal("0.10"), False) for n in range(3)]
    results = hold_place_many(placements=[placement_new(**call) for call in calls])
    assert isinstance(results[1], AccountInactive)
    assert str(results[1]) == f"account #{world.accounts[1].pk} is suspended"
    assert [world.outcome(results[0]), world.outcome(results[2])] == [
        ("hold", 0, Decimal("0.10"), Decimal("0.90")),
        ("hold", 2, Decimal("0.10"), Decimal("0.90")),
    ]


@pytest.mark.django_db
def test_a_reused_reference_is_a_conflict_alone_and_the_others_are_placed(caplog):
    world = World("reuse", ["1.00", "1.00", "1.00"])
    first = world.placement(0, Decimal("0.10"), False)
    again = world.placement(1, Decimal("0.10"), True)
    other = world.placement(2, Decimal("0.10"), False)
    results = hold_place_many(placements=[placement_new(**call) for call in (first, again, other)])
    assert isinstance(results[1], IdempotencyConflict)
    assert [results[0].reference, results[2].reference] == [first["reference"], other["reference"]]
    assert "placing them one by one" in caplog.text
    held = [Account.objects.get(pk=a.pk).held for a in world.accounts]
    assert held == [Decimal("0.10"), Decimal("0"), Decimal("0.10")]


@pytest.mark.django_db
def test_a_bad_hold_fails_alone_and_the_others_are_placed():
    world = World("bad", ["1.00", "1.00", "1.00"])
    good = world.placement(0, Decimal("0.10"), False)
    bad = world.placement(0, Decimal("0.20"), False, user="x" * 257)
    other = world.placement(0, Decimal("0.30"), False)
    results = hold_place_many(placements=[placement_new(**call) for call in (good, bad, other)])
    assert isinstance(results[1], DataError)
    assert [world.outcome(results[0]), world.outcome(results[2])] == [
        ("hold", 0, Decimal("0.10"), Decimal("0.90")),
        ("hold", 0, Decimal("0.30"), Decimal("0.60")),
    ]
    assert not Hold.objects.filter(reference=bad["reference"]).exists()
    assert Account.objects.get(pk=world.accounts[0].pk).held == Decimal("0.40")


@pytest.mark.django_db
def test_a_database_outage_fails_every_hold_as_it_fails_alone(monkeypatch):
    world = World("down", ["1.00", "1.00", "1.00"])
    calls = [world.placement(n, Decimal("0.10"), False) for n in range(3)]

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "fetch_all", down)
    results = hold_place_many(placements=[placement_new(**call) for call in calls])
    assert all(isinstance(result, DATABASE_DOWN) for result in results)
    assert not Hold.objects.filter(account_id__in=[a.pk for a in world.accounts]).exists()
    assert [Account.objects.get(pk=a.pk).held for a in world.accounts] == [Decimal("0")] * 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_under_gevent_share_one_statement(monkeypatch):
    world = World("green", ["1.00", "1.00", "1.00"])
    batches: list[int] = []
    batch = services._holds.batch
    monkeypatch.setattr(services._holds, "cooperative", True)

    def recorded(items):
        batches.append(len(items))
        gevent.sleep(0.01)  # the round trip, which the test's unpatched driver would not yield for
        return batch(items)

    monkeypatch.setattr(services._holds, "batch", recorded)
    calls = [world.placement(n % 3, Decimal("0.40"), False) for n in range(7)]
    threads = [gevent.spawn(hold_place, **call) for call in calls]
    gevent.joinall(threads)
    outcomes = [world.outcome(t.value if t.successful() else t.exception) for t in threads]
    # The first finds the writer idle and goes alone; the six queued while it was written go together.
    assert batches == [1, 6]
    assert outcomes == [
        ("hold", 0, Decimal("0.40"), Decimal("0.60")),
        ("hold", 1, Decimal("0.40"), Decimal("0.60")),
        ("hold", 2, Decimal("0.40"), Decimal("0.60")),
        ("hold", 0, Decimal("0.40"), Decimal("0.20")),
        ("hold", 1, Decimal("0.40"), Decimal("0.20")),
        ("hold", 2, Decimal("0.40"), Decimal("0.20")),
        ("funds", Decimal("0.20"), Decimal("0.40")),
    ]


@pytest.mark.django_db(transaction=True)
def test_batches_of_holds_and_of_charges_racing_on_shared_accounts_never_deadlock_nor_overdraw(settings):
    # Each batch names the accounts in another order; charges settle beside them on the same accounts.
    settings.MIN_BALANCE_USD = Decimal("0.10")
    world = World("race", ["1.00", "1.00", "1.00"])
    settled = [world.placement(n % 3, Decimal("0.05"), False) for n in range(12)]
    for call in settled:
        hold_place(**call)
    batches = [[world.placement(n % 3, Decimal("0.10"), False) for n in range(12)] for _ in range(6)]
    barrier = threading.Barrier(len(batches) + 2)
    results: list = []

    def place(calls: list[dict], turn: int) -> None:
        ordered = calls[turn % 3 :] + calls[: turn % 3]
        try:
            barrier.wait()
            results.extend(hold_place_many(placements=[placement_new(**call) for call in ordered]))
        finally:
            connection.close()

    def settle(calls: list[dict]) -> None:
        try:
            barrier.wait()
            charges = [charge_new(reference=call["reference"], cost=Decimal("0.05")) for call in calls]
            results.extend(hold_settle_many(charges=charges))
        finally:
            connection.close()

    threads = [threading.Thread(target=place, args=(calls, turn)) for turn, calls in enumerate(batches)]
    threads += [
        threading.Thread(target=settle, args=(settled[:6],)),
        threading.Thread(target=settle, args=(settled[6:],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r for r in results if not isinstance(r, Hold | LedgerEntry | InsufficientFunds)] == []
    assert len(results) == 72 + 12
    for account in Account.objects.filter(pk__in=[a.pk for a in world.accounts]):
        # Each account's $1.00 - $0.20 charged covers 8 of its 24 holds of $0.10.
        open_holds = Hold.objects.filter(account=account, status=Hold.Status.OPEN)
        assert (account.balance, account.held) == (Decimal("0.80"), Decimal("0.80"))
        assert sum(h.amount for h in open_holds) == account.held
        assert open_holds.count() == 8


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        statements.place_many_sql(unflushed=True, also=None).replace("%(_holds)s", "$1"),
        statements.settle_many_sql(also=None).replace("%(_charges)s", "$1"),
    ],
    ids=["holds", "charges"],
)
def test_a_batch_finds_its_accounts_through_the_primary_key_among_many_accounts(sql):
    # PostgreSQL prepares the statement and soon plans it once for any batch (a generic plan), expecting a
    # hundred items of the JSON it cannot see. Joined to those, the accounts were read whole (a sequential
    # scan of every account, twice per batch of holds); looked up by an array of ids, through their primary key.
    Account.objects.bulk_create(Account(name=f"Customer {n}", email=f"c{n}@example.com") for n in range(3000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE accounts_account")
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            cursor.execute(f"PREPARE holds AS {sql}")
            cursor.execute("EXPLAIN EXECUTE holds('[]')")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE ALL")
            cursor.execute("RESET plan_cache_mode")

    assert "Seq Scan on accounts_account" not in plan
    assert "Index Scan using accounts_account_pkey" in plan
