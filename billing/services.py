"""The ledger service: the only code that changes a balance.

Every function here is keyword-only and atomic. A balance changes only together with the ledger entry
that explains it (`_append`), and `Account.held` only together with the hold it sums. Each entry has a
unique idempotency key, so a replayed call — sequential or racing — changes nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F
from django.utils import timezone

from accounts.models import Account
from core.db import (
    DATABASE_DOWN,
    fetch_all,
    fetch_one,
    in_transaction,
    is_postgresql,
    opened_connection,
    release_db,
)
from core.group_commit import GroupCommit

from . import statements
from .models import Hold, LedgerEntry, Price, RouteCost
from .money import ZERO, usd
from .statements import Charge, Placement, RowInsert, RowUpdate
from .tasks import low_balance_enqueue_on_commit

log = logging.getLogger(__name__)


class BillingError(Exception):
    """A money operation that cannot be carried out."""


class InsufficientFunds(BillingError):
    """The available balance does not cover the amount (or is under MIN_BALANCE_USD)."""

    def __init__(self, *, available: Decimal, needed: Decimal) -> None:
        super().__init__(f"available balance {available} USD does not cover {needed} USD")
        self.available = available
        self.needed = needed


class AccountInactive(BillingError):
    """The account is suspended."""


class IdempotencyConflict(BillingError):
    """The idempotency key was already used for a different operation."""


def _append(
    *,
    account_id: int,
    kind: str,
    amount: Decimal,
    idempotency_key: str,
    reference: str = "",
    memo: str = "",
    created_by: AbstractBaseUser | None = None,
    floor: Decimal | None = None,
) -> LedgerEntry:
    """Append an entry and move the cached balance with it; the caller holds a transaction.

    `floor`: refuse when the available balance would end below it. A replay of the same key returns
    the entry first written, marked `replayed`.
    """
    if not idempotency_key:
        raise ValueError("every ledger entry needs an idempotency key")
    # Lock the account first: a racing call with the same key waits here, then sees the first entry.
    account = Account.objects.select_for_update().only("balance", "held", "low_balance_threshold").get(pk=account_id)
    existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        if (existing.account_id, existing.kind, existing.amount) != (account_id, kind, amount):
            raise IdempotencyConflict(f"idempotency key {idempotency_key!r} was used for another entry")
        existing.replayed = True
        return existing
    balance_after = account.balance + amount
    if floor is not None and amount < 0 and balance_after - account.held < floor:
        raise InsufficientFunds(available=account.balance - account.held, needed=-amount)
    try:
        with transaction.atomic():
            entry = LedgerEntry.objects.create(
                account_id=account_id,
                kind=kind,
                amount=amount,
                balance_after=balance_after,
                idempotency_key=idempotency_key,
                reference=reference,
                memo=memo,
                created_by=created_by,
            )
    except IntegrityError:
        raise IdempotencyConflict(f"idempotency key {idempotency_key!r} was used for another account")
    Account.objects.filter(pk=account_id).update(balance=balance_after)
    account.balance = balance_after
    entry.account_after = account
    return entry


def _positive(amount: Decimal | int | str) -> Decimal:
    value = usd(amount)
    if value <= ZERO:
        raise ValueError("the amount must be positive")
    return value


def _nonzero(amount: Decimal | int | str) -> Decimal:
    value = usd(amount)
    if value == ZERO:
        raise ValueError("the amount must not be zero")
    return value


@transaction.atomic
def ledger_credit(
    *,
    account: Account,
    amount: Decimal | str,
    idempotency_key: str,
    memo: str = "",
    kind: str = LedgerEntry.Kind.TOPUP,
    reference: str = "",
    created_by: AbstractBaseUser | None = None,
) -> LedgerEntry:
    """Add money from outside (a payment, an operator top-up, a promo code)."""
    if kind not in (LedgerEntry.Kind.TOPUP, LedgerEntry.Kind.PROMO):
        raise ValueError("a credit is a top-up or a promo")
    return _append(
        account_id=account.pk,
        kind=kind,
        amount=_positive(amount),
        idempotency_key=idempotency_key,
        reference=reference,
        memo=memo,
        created_by=created_by,
    )


@transaction.atomic
def ledger_adjust(
    *,
    account: Account,
    amount: Decimal | str,
    idempotency_key: str,
    memo: str,
    created_by: AbstractBaseUser | None = None,
) -> LedgerEntry:
    """Correct a balance by a signed amount; a debit may not take the available balance below zero."""
    if not memo.strip():
        raise ValueError("an adjustment needs a memo that says why")
    return _append(
        account_id=account.pk,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        amount=_nonzero(amount),
        idempotency_key=idempotency_key,
        memo=memo,
        created_by=created_by,
        floor=ZERO,
    )


@transaction.atomic
def ledger_refund(
    *,
    account: Account,
    amount: Decimal | str,
    idempotency_key: str,
    memo: str = "",
    reference: str = "",
    created_by: AbstractBaseUser | None = None,
) -> LedgerEntry:
    """Record a refund: positive gives back a charge, negative returns a payment to the customer."""
    return _append(
        account_id=account.pk,
        kind=LedgerEntry.Kind.REFUND,
        amount=_nonzero(amount),
        idempotency_key=idempotency_key,
        reference=reference,
        memo=memo,
        created_by=created_by,
        floor=ZERO,
    )


def _statement(sql: str, params: dict[str, Any], db: BaseDatabaseWrapper | None) -> tuple | None:
    """Run one money statement and return its row; a reused idempotency key is a conflict, not a crash."""
    try:
        return fetch_one(sql, params, db)
    except (IntegrityError, psycopg.IntegrityError) as exc:
        raise IdempotencyConflict(f"the statement collided with an existing entry: {exc}")


def _refused(
    account_id: int, needed: Decimal, status: str | None = None, available: Decimal | None = None
) -> BillingError:
    """Why a hold was refused; read from the account unless the statement returned its status and available balance."""
    if status is None:
        account = Account.objects.only("status", "balance", "held").get(pk=account_id)
        status, available = account.status, account.available
    if status != Account.Status.ACTIVE:
        return AccountInactive(f"account #{account_id} is {status}")
    return InsufficientFunds(available=available, needed=needed)


def placement_new(
    *, account_id: int, amount: Decimal, reference: str, ttl_seconds: int | None = None, also: RowInsert | None = None
) -> Placement:
    """What `hold_place` is asked to hold, checked and stamped now (one item of `hold_place_many`)."""
    amount = usd(amount)
    if amount < ZERO:
        raise ValueError("a hold cannot be negative")
    now = timezone.now()
    ttl = settings.HOLD_TTL_SECONDS if ttl_seconds is None else ttl_seconds
    needed = max(amount, settings.MIN_BALANCE_USD)
    return Placement(account_id, amount, needed, reference, now, now + timedelta(seconds=ttl), also)


def hold_place(
    *,
    account_id: int,
    amount: Decimal,
    reference: str,
    ttl_seconds: int | None = None,
    also: RowInsert | None = None,
) -> Hold:
    """Reserve `amount` for a request, or raise InsufficientFunds / AccountInactive.

    The reservation is one conditional UPDATE: PostgreSQL re-checks the condition under the row lock,
    so concurrent requests can never reserve more than the balance. On PostgreSQL the whole placement
    (and the caller's `also`) is a single statement: one round trip, its own transaction, which under
    gevent, outside a transaction, is shared with the process's concurrent holds (group commit).
    """
    placement = placement_new(
        account_id=account_id, amount=amount, reference=reference, ttl_seconds=ttl_seconds, also=also
    )
    if is_postgresql():
        db = opened_connection()
        if _holds.cooperative and not in_transaction(db):
            if db is not None:
                # The writer borrows a pooled connection: callers waiting on it must not keep theirs, or
                # with every connection held by one of them the writer would get none.
                release_db()
            return _placed(placement, _holds.submit(placement))
        return _placed(placement, _place_alone(placement, db))
    with transaction.atomic():
        reserved = Account.objects.filter(
            pk=account_id, status=Account.Status.ACTIVE, balance__gte=F("held") + placement.needed
        ).update(held=F("held") + placement.amount)
        if not reserved:
            raise _refused(account_id, placement.needed)
        hold = _hold(placement)
        hold.save(force_insert=True)
        if also:
            also.model._default_manager.create(**also.values)
    return hold


def hold_place_many(*, placements: Sequence[Placement]) -> list[Hold | Exception]:
    """Place many holds at once, each exactly as `hold_place` alone in the same order: its hold, or its error.

    PostgreSQL only (the group commit's path, run here in the caller): the holds go in one statement
    (`statements.place_many_sql`), or, when that statement fails other than by the database being down,
    one statement each, so that one bad hold fails alone.
    """
    rows = _place_rows(placements, opened_connection())
    return [
        row if isinstance(row, Exception) else _outcome(lambda p=p, row=row: _placed(p, row))
        for p, row in zip(placements, rows, strict=True)
    ]


def _hold(placement: Placement) -> Hold:
    return Hold(
        account_id=placement.account_id,
        amount=placement.amount,
        reference=placement.reference,
        created_at=placement.now,
        expires_at=placement.expires,
    )


def _placed(placement: Placement, row: PlaceRow) -> Hold:
    """The hold a statement placed, or the refusal it returned raised."""
    hold_id, status, available = row
    if hold_id is None:
        raise _refused(placement.account_id, placement.needed, status, available)
    hold = _hold(placement)
    hold.pk, hold.available_after = hold_id, available
    hold._state.adding = False
    return hold


# A hold as the statements return it: its id, the account's status and its available balance right after
# (when refused: the id is None, and the status None unless the statement read why).
PlaceRow = tuple[int | None, str | None, Decimal | None]


def _place_alone(placement: Placement, db: BaseDatabaseWrapper | None) -> PlaceRow:
    """Place one hold in its own statement (`statements.place_sql`)."""
    params = statements.place_params(
        amount=placement.amount,
        account_id=placement.account_id,
        needed=placement.needed,
        reference=placement.reference,
        now=placement.now,
        expires=placement.expires,
        also=placement.also,
    )
    sql = statements.place_sql(unflushed=not in_transaction(db), also=statements.place_also_shape(placement.also))
    row = _statement(sql, params, db)
    if row is not None:
        return row[0], Account.Status.ACTIVE, row[1]
    # Why it was refused, read now: in a batch retried one by one, before the next hold is placed.
    state = fetch_one(statements.account_state_sql(), {"_account": placement.account_id}, db)
    return (None, None, None) if state is None else (None, *state)


def _place_rows(placements: Sequence[Placement], db: BaseDatabaseWrapper | None) -> list[PlaceRow | Exception]:
    """Each hold's row or error, placed in order; one statement per run of holds with one shape of `also`."""
    if len(placements) == 1:
        return [_outcome(lambda: _place_alone(placements[0], db))]
    outcomes: list[PlaceRow | Exception] = []
    start = 0
    while start < len(placements):
        shape = statements.place_also_shape(placements[start].also)
        end = start + 1
        while end < len(placements) and statements.place_also_shape(placements[end].also) == shape:
            end += 1
        outcomes += _place_run(placements[start:end], shape, db)
        start = end
    return outcomes


def _place_run(
    placements: Sequence[Placement], shape: Any, db: BaseDatabaseWrapper | None
) -> list[PlaceRow | Exception]:
    try:
        sql = statements.place_many_sql(unflushed=not in_transaction(db), also=shape)
        rows = fetch_all(sql, statements.place_many_params(placements), db)
    except DATABASE_DOWN as exc:
        # Each hold fails as it would alone: its request is refused as when the database is down.
        return [exc] * len(placements)
    except Exception as exc:  # one bad hold (a reused reference, a field too long) must not fail the others
        log.warning("a batch of %d holds failed (%s); placing them one by one", len(placements), exc)
        return [_outcome(lambda p=p: _place_alone(p, db)) for p in placements]
    return [(hold_id, status, available) for _, hold_id, status, available in rows]


def _close(hold: Hold, *, status: str, reason: str, entry: LedgerEntry | None) -> None:
    Account.objects.filter(pk=hold.account_id).update(held=F("held") - hold.amount)
    hold.status = status
    hold.closed_at = timezone.now()
    hold.close_reason = reason
    hold.ledger_entry = entry
    hold.save(update_fields=["status", "closed_at", "close_reason", "ledger_entry"])


def charge_new(
    *, reference: str, cost: Decimal, memo: str = "", reason: str = "settled", also: RowUpdate | None = None
) -> Charge:
    """What `hold_settle` is asked to charge, checked and stamped now (one item of `hold_settle_many`)."""
    cost = usd(cost)
    if cost < ZERO:
        raise ValueError("a charge cannot be negative")
    return Charge(reference, cost, f"charge:{reference}", memo, timezone.now(), reason, also)


def hold_settle(
    *, reference: str, cost: Decimal, memo: str = "", reason: str = "settled", also: RowUpdate | None = None
) -> LedgerEntry:
    """Charge the real cost of a request and close its hold, exactly once.

    The charge never exceeds the hold (the worst case the request was allowed to spend). Settling a
    closed hold changes nothing (nor does `also`) and returns the charge it was settled with. On
    PostgreSQL the charge, the balance, the hold and the caller's `also` change in one statement, which
    under gevent, outside a transaction, is shared with the process's concurrent charges (group commit).
    """
    charge = charge_new(reference=reference, cost=cost, memo=memo, reason=reason, also=also)
    if is_postgresql():
        db = opened_connection()
        if _charges.cooperative and not in_transaction(db):
            return _charged(charge, _charges.submit(charge))
        return _charged(charge, _settle_alone(charge, db))
    with transaction.atomic():
        hold = Hold.objects.select_for_update().get(reference=reference)
        if hold.status != Hold.Status.OPEN:
            return _settled_before(reference, charge.key)
        entry = _append(
            account_id=hold.account_id,
            kind=LedgerEntry.Kind.CHARGE,
            amount=-min(charge.cost, hold.amount),
            idempotency_key=charge.key,
            reference=reference,
            memo=memo,
        )
        _close(hold, status=Hold.Status.SETTLED, reason=reason, entry=entry)
        if also:
            changes = dict(also.values)
            if also.charge_field:
                changes[also.charge_field] = -entry.amount
            also.model._default_manager.filter(pk=also.pk).update(**changes)
        account = entry.account_after
        low_balance_enqueue_on_commit(
            hold.account_id,
            available=account.balance - (account.held - hold.amount),
            threshold=account.low_balance_threshold,
        )
    return entry


def hold_settle_many(*, charges: Sequence[Charge]) -> list[LedgerEntry | Exception]:
    """Settle many holds at once, each exactly as `hold_settle` alone: its entry, or the error it raised.

    PostgreSQL only (the group commit's path, run here in the caller): the charges go in one statement
    (`statements.settle_many_sql`), or, when that statement fails other than by the database being down,
    one statement each, so that one bad charge fails alone.
    """
    rows = _settle_rows(charges, opened_connection())
    return [
        row if isinstance(row, Exception) else _outcome(lambda c=c, row=row: _charged(c, row))
        for c, row in zip(charges, rows, strict=True)
    ]


# A settled charge as the statements return it: the entry's id, amount, account and `balance_after`, then
# the account's balance, held and alert threshold once the statement's charges were written.
ChargeRow = tuple[int, Decimal, int, Decimal, Decimal, Decimal, Decimal]


def _outcome(run: Callable[[], Any]) -> Any:
    try:
        return run()
    except Exception as exc:  # the item's own error, raised by its caller
        return exc


def _settle_alone(charge: Charge, db: BaseDatabaseWrapper | None) -> ChargeRow | None:
    """Settle one charge in its own statement (`statements.settle_sql`); None when its hold is not open."""
    params = statements.settle_params(
        reference=charge.reference,
        cost=charge.cost,
        key=charge.key,
        memo=charge.memo,
        now=charge.now,
        reason=charge.reason,
        also=charge.also,
    )
    row = _statement(statements.settle_sql(also=statements.settle_also_shape(charge.also)), params, db)
    if row is None:
        return None
    entry_id, amount, account_id, balance, held, threshold = row
    return entry_id, amount, account_id, balance, balance, held, threshold


def _settle_rows(charges: Sequence[Charge], db: BaseDatabaseWrapper | None) -> list[ChargeRow | None | Exception]:
    """Each charge's row (None: its hold is not open) or error; one statement per shape of `also`."""
    if len(charges) == 1:
        return [_outcome(lambda: _settle_alone(charges[0], db))]
    groups: dict[Any, list[int]] = {}
    for i, charge in enumerate(charges):
        groups.setdefault(statements.settle_also_shape(charge.also), []).append(i)
    outcomes: list[ChargeRow | None | Exception] = [None] * len(charges)
    for shape, indexes in groups.items():
        group = [charges[i] for i in indexes]
        try:
            rows = fetch_all(statements.settle_many_sql(also=shape), statements.settle_many_params(group), db)
        except DATABASE_DOWN as exc:
            # Each charge fails as it would alone, and is spooled by its caller (completions/spool.py).
            for i in indexes:
                outcomes[i] = exc
            continue
        except Exception as exc:  # one bad charge must not fail the others
            log.warning("a batch of %d charges failed (%s); settling them one by one", len(group), exc)
            for i in indexes:
                outcomes[i] = _outcome(lambda i=i: _settle_alone(charges[i], db))
            continue
        for index, *row in rows:
            outcomes[indexes[index]] = tuple(row)
    return outcomes


def _charged(charge: Charge, row: ChargeRow | None) -> LedgerEntry:
    """The entry a statement wrote for `charge` (or the one its hold was settled with before)."""
    if row is None:
        return _settled_before(charge.reference, charge.key)
    entry_id, amount, account_id, balance_after, balance, held, threshold = row
    entry = LedgerEntry(
        id=entry_id,
        account_id=account_id,
        kind=LedgerEntry.Kind.CHARGE,
        amount=amount,
        balance_after=balance_after,
        reference=charge.reference,
        idempotency_key=charge.key,
        memo=charge.memo,
        created_at=charge.now,
    )
    entry._state.adding = False
    # A charge is what drives a balance under its alert threshold: check right after it commits.
    low_balance_enqueue_on_commit(account_id, available=balance - held, threshold=threshold)
    return entry


def _settled_before(reference: str, key: str) -> LedgerEntry:
    """The charge a closed hold was settled with (a replayed settlement changes nothing)."""
    hold = Hold.objects.get(reference=reference)
    entry = hold.ledger_entry or LedgerEntry.objects.filter(idempotency_key=key).first()
    if entry is None:
        raise BillingError(f"hold {reference} was {hold.status} without a charge")
    return entry


# Under gevent, the process's concurrent charges share statements (core/group_commit.py).
_charges: GroupCommit[Charge, ChargeRow | None] = GroupCommit(
    lambda charges: _settle_rows(charges, None), name="charges"
)
# And so do its concurrent holds, each still refused alone for its own funds.
_holds: GroupCommit[Placement, PlaceRow] = GroupCommit(lambda holds: _place_rows(holds, None), name="holds")


@transaction.atomic
def hold_release(*, reference: str, reason: str) -> bool:
    """Give a hold back without charging; False when it was already closed."""
    hold = Hold.objects.select_for_update().get(reference=reference)
    if hold.status != Hold.Status.OPEN:
        return False
    _close(hold, status=Hold.Status.RELEASED, reason=reason, entry=None)
    return True


def _rates(
    prompt: Decimal | str,
    completion: Decimal | str,
    cached_prompt: Decimal | str | None,
    request: Decimal | str,
    *,
    what: str,
    cache_write_prompt: Decimal | str | None = None,
) -> dict[str, Decimal | None]:
    """A price or cost version's amounts (USD per 1M tokens, per request), exact and never negative."""
    values = {"prompt": usd(prompt), "completion": usd(completion), "request": usd(request)}
    values["cached_prompt"] = None if cached_prompt in (None, "") else usd(cached_prompt)
    values["cache_write_prompt"] = None if cache_write_prompt in (None, "") else usd(cache_write_prompt)
    if any(v is not None and v < ZERO for v in values.values()):
        raise ValueError(f"{what} cannot be negative")
    return values


def price_set(
    *,
    model_id: int,
    prompt: Decimal | str,
    completion: Decimal | str,
    cached_prompt: Decimal | str | None = None,
    request: Decimal | str = ZERO,
    cache_write_prompt: Decimal | str | None = None,
    effective_from: datetime | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Price:
    """Add a price version for a model (USD per 1M tokens); earlier versions stay as history."""
    values = _rates(prompt, completion, cached_prompt, request, what="prices", cache_write_prompt=cache_write_prompt)
    return Price.objects.create(
        model_id=model_id, effective_from=effective_from or timezone.now(), created_by=created_by, **values
    )


def route_cost_set(
    *,
    route_id: int,
    prompt: Decimal | str,
    completion: Decimal | str,
    cached_prompt: Decimal | str | None = None,
    request: Decimal | str = ZERO,
    cache_write_prompt: Decimal | str | None = None,
    effective_from: datetime | None = None,
    created_by: AbstractBaseUser | None = None,
) -> RouteCost:
    """Add a version of what a route costs us (USD per 1M tokens); earlier versions stay as history."""
    values = _rates(prompt, completion, cached_prompt, request, what="costs", cache_write_prompt=cache_write_prompt)
    return RouteCost.objects.create(
        route_id=route_id, effective_from=effective_from or timezone.now(), created_by=created_by, **values
    )
