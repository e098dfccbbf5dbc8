"""The ledger service: the only code that changes a balance.

Every function here is keyword-only and atomic. A balance changes only together with the ledger entry
that explains it (`_append`), and `Account.held` only together with the hold it sums. Each entry has a
unique idempotency key, so a replayed call — sequential or racing — changes nothing twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F
from django.db.utils import DatabaseErrorWrapper
from django.utils import timezone
from psycopg_pool import ConnectionPool

from accounts.models import Account

from .models import Hold, LedgerEntry, Price
from .money import ZERO, usd
from .tasks import low_balance_enqueue_on_commit


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


@dataclass(frozen=True)
class AlsoWrite:
    """A caller's own write that must commit together with a hold being placed or settled.

    On PostgreSQL `sql` runs inside the same single statement, as a data-modifying CTE that may read
    the CTEs `h` (the hold: id, account_id) and, when settling, `e` (the charge: id, amount); its
    placeholders are `%(name)s` keys of `params`. Elsewhere `orm` does the same write, in the same
    transaction.
    """

    sql: str
    params: dict[str, Any]
    orm: Callable[[], Any]


def single_statement() -> bool:
    """Whether holds are placed and settled in one SQL statement each (PostgreSQL) or through the ORM."""
    # From the settings rather than `connection.vendor`: under gevent, looking up a green thread's
    # connection creates its DatabaseWrapper, which the pooled path below does without.
    return settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"] == "django.db.backends.postgresql"


# A hold is a reservation, not money: when the statement is its own transaction it commits without
# waiting for the WAL flush (`set_config(..., true)` lasts until that commit). A crash of the database
# server can then lose the last moment's holds with their generations, and the requests in flight go
# uncharged; no charge is ever lost or doubled, since a charge commits durably, flushing in WAL order
# the hold it settles.
_PLACE = """
WITH a AS (
    UPDATE accounts_account SET held = held + %(_amount)s
    WHERE id = %(_account)s AND status = 'active' AND balance >= held + %(_needed)s{unflushed}
    RETURNING id, balance - held AS available
), h AS (
    INSERT INTO billing_hold (account_id, amount, reference, status, created_at, expires_at, close_reason)
    SELECT id, %(_amount)s, %(_reference)s, 'open', %(_now)s, %(_expires)s, '' FROM a
    RETURNING id, account_id
){also}
SELECT h.id, a.available FROM h, a
"""
_UNFLUSHED = "\n        AND set_config('synchronous_commit', 'off', true) = 'off'"


@functools.lru_cache(maxsize=64)
def _sql(template: str, **parts: str) -> str:
    """A money statement with its parts filled in (the same few texts every time: PostgreSQL prepares them)."""
    return template.format(**parts)


def _statement(sql: str, params: dict[str, Any], db: BaseDatabaseWrapper | None) -> tuple | None:
    """Run one money statement and return its row; a reused idempotency key is a conflict, not a crash.

    `db` is this thread's opened connection (`opened_connection()`), which the caller looked up already.
    """
    try:
        if db is not None and db.in_atomic_block:
            # Inside a caller's transaction a savepoint keeps that transaction usable.
            with db.wrap_database_errors, transaction.atomic():
                return _fetch_one(db.connection, sql, params)
        pool = None if db is not None and db.connection is not None else _pool()
        if pool is None:
            db = connection if db is None else db
            db.ensure_connection()
            with db.wrap_database_errors:
                return _fetch_one(db.connection, sql, params)
        # Alone the statement is its own transaction: a pooled connection for just its round trip,
        # without this thread's Django connection being set up (or even looked up) at all.
        with DatabaseErrorWrapper(connection), pool.connection() as raw:
            return _fetch_one(raw, sql, params)
    except (IntegrityError, psycopg.IntegrityError) as exc:
        raise IdempotencyConflict(f"the statement collided with an existing entry: {exc}")


def opened_connection() -> BaseDatabaseWrapper | None:
    """This thread's default database connection if the thread has used it, else None (and none is made)."""
    return next((db for db in connections.all(initialized_only=True) if db.alias == DEFAULT_DB_ALIAS), None)


_pools: list[ConnectionPool] = []


def _pool() -> ConnectionPool | None:
    """The process's PostgreSQL connection pool (Django's own), or None when pooling is off."""
    if not _pools or _pools[0].closed:
        pool = connection.pool
        if pool is None:
            return None
        if pool.closed:
            pool.open()
        _pools[:] = [pool]
    return _pools[0]


def _fetch_one(raw: psycopg.Connection, sql: str, params: dict[str, Any]) -> tuple | None:
    # A server-side binding cursor (Django's own cursors interpolate values into the text), so that
    # PostgreSQL prepares these statements after a few runs instead of parsing and planning each time.
    with psycopg.Cursor(raw) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _refused(account_id: int, needed: Decimal) -> BillingError:
    account = Account.objects.only("status", "balance", "held").get(pk=account_id)
    if account.status != Account.Status.ACTIVE:
        return AccountInactive(f"account #{account_id} is {account.status}")
    return InsufficientFunds(available=account.available, needed=needed)


def hold_place(
    *,
    account_id: int,
    amount: Decimal,
    reference: str,
    ttl_seconds: int | None = None,
    also: AlsoWrite | None = None,
) -> Hold:
    """Reserve `amount` for a request, or raise InsufficientFunds / AccountInactive.

    The reservation is one conditional UPDATE: PostgreSQL re-checks the condition under the row lock,
    so concurrent requests can never reserve more than the balance. On PostgreSQL the whole placement
    (and the caller's `also`) is a single statement: one round trip, its own transaction.
    """
    amount = usd(amount)
    if amount < ZERO:
        raise ValueError("a hold cannot be negative")
    needed = max(amount, settings.MIN_BALANCE_USD)
    now = timezone.now()
    ttl = settings.HOLD_TTL_SECONDS if ttl_seconds is None else ttl_seconds
    hold = Hold(
        account_id=account_id,
        amount=amount,
        reference=reference,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    if single_statement():
        params = {
            "_amount": amount,
            "_account": account_id,
            "_needed": needed,
            "_reference": reference,
            "_now": now,
            "_expires": hold.expires_at,
            **(also.params if also else {}),
        }
        db = opened_connection()
        alone = db is None or not db.in_atomic_block
        row = _statement(
            _sql(_PLACE, also=f", also AS ({also.sql})" if also else "", unflushed=_UNFLUSHED if alone else ""),
            params,
            db,
        )
        if row is None:
            raise _refused(account_id, needed)
        hold.pk, hold.available_after = row
        hold._state.adding = False
        return hold
    with transaction.atomic():
        reserved = Account.objects.filter(
            pk=account_id, status=Account.Status.ACTIVE, balance__gte=F("held") + needed
        ).update(held=F("held") + amount)
        if not reserved:
            raise _refused(account_id, needed)
        hold.save(force_insert=True)
        if also:
            also.orm()
    return hold


def _close(hold: Hold, *, status: str, reason: str, entry: LedgerEntry | None) -> None:
    Account.objects.filter(pk=hold.account_id).update(held=F("held") - hold.amount)
    hold.status = status
    hold.closed_at = timezone.now()
    hold.close_reason = reason
    hold.ledger_entry = entry
    hold.save(update_fields=["status", "closed_at", "close_reason", "ledger_entry"])


_SETTLE = """
WITH h AS (
    SELECT id, account_id, amount FROM billing_hold
    WHERE reference = %(_reference)s AND status = 'open' FOR UPDATE
), a AS (
    UPDATE accounts_account acc
    SET balance = acc.balance - LEAST(%(_cost)s, h.amount), held = acc.held - h.amount
    FROM h WHERE acc.id = h.account_id
    RETURNING acc.id, acc.balance, acc.held, acc.low_balance_threshold, LEAST(%(_cost)s, h.amount) AS charge
), e AS (
    INSERT INTO billing_ledgerentry
        (account_id, kind, amount, balance_after, reference, idempotency_key, memo, created_at)
    SELECT id, 'charge', -charge, balance, %(_reference)s, %(_key)s, %(_memo)s, %(_now)s FROM a
    RETURNING id, amount
), closed AS (
    UPDATE billing_hold SET status = 'settled', closed_at = %(_now)s, close_reason = %(_reason)s,
        ledger_entry_id = e.id
    FROM e, h WHERE billing_hold.id = h.id
){also}
SELECT e.id, e.amount, a.id, a.balance, a.held, a.low_balance_threshold FROM e, a
"""


def hold_settle(
    *, reference: str, cost: Decimal, memo: str = "", reason: str = "settled", also: AlsoWrite | None = None
) -> LedgerEntry:
    """Charge the real cost of a request and close its hold, exactly once.

    The charge never exceeds the hold (the worst case the request was allowed to spend). Settling a
    closed hold changes nothing (nor does `also`) and returns the charge it was settled with. On
    PostgreSQL the charge, the balance, the hold and the caller's `also` change in one statement.
    """
    cost = usd(cost)
    if cost < ZERO:
        raise ValueError("a charge cannot be negative")
    key = f"charge:{reference}"
    if single_statement():
        now = timezone.now()
        params = {
            "_reference": reference,
            "_cost": cost,
            "_key": key,
            "_memo": memo,
            "_now": now,
            "_reason": reason,
            **(also.params if also else {}),
        }
        row = _statement(_sql(_SETTLE, also=f", also AS ({also.sql})" if also else ""), params, opened_connection())
        if row is None:
            return _settled_before(reference, key)
        entry_id, amount, account_id, balance, held, threshold = row
        entry = LedgerEntry(
            id=entry_id,
            account_id=account_id,
            kind=LedgerEntry.Kind.CHARGE,
            amount=amount,
            balance_after=balance,
            reference=reference,
            idempotency_key=key,
            memo=memo,
            created_at=now,
        )
        entry._state.adding = False
        # A charge is what drives a balance under its alert threshold: check right after it commits.
        low_balance_enqueue_on_commit(account_id, available=balance - held, threshold=threshold)
        return entry
    with transaction.atomic():
        hold = Hold.objects.select_for_update().get(reference=reference)
        if hold.status != Hold.Status.OPEN:
            return _settled_before(reference, key)
        entry = _append(
            account_id=hold.account_id,
            kind=LedgerEntry.Kind.CHARGE,
            amount=-min(cost, hold.amount),
            idempotency_key=key,
            reference=reference,
            memo=memo,
        )
        _close(hold, status=Hold.Status.SETTLED, reason=reason, entry=entry)
        if also:
            also.orm()
        account = entry.account_after
        low_balance_enqueue_on_commit(
            hold.account_id,
            available=account.balance - (account.held - hold.amount),
            threshold=account.low_balance_threshold,
        )
    return entry


def _settled_before(reference: str, key: str) -> LedgerEntry:
    """The charge a closed hold was settled with (a replayed settlement changes nothing)."""
    hold = Hold.objects.get(reference=reference)
    entry = hold.ledger_entry or LedgerEntry.objects.filter(idempotency_key=key).first()
    if entry is None:
        raise BillingError(f"hold {reference} was {hold.status} without a charge")
    return entry


@transaction.atomic
def hold_release(*, reference: str, reason: str) -> bool:
    """Give a hold back without charging; False when it was already closed."""
    hold = Hold.objects.select_for_update().get(reference=reference)
    if hold.status != Hold.Status.OPEN:
        return False
    _close(hold, status=Hold.Status.RELEASED, reason=reason, entry=None)
    return True


def price_set(
    *,
    model_id: int,
    prompt: Decimal | str,
    completion: Decimal | str,
    cached_prompt: Decimal | str | None = None,
    request: Decimal | str = ZERO,
    effective_from: datetime | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Price:
    """Add a price version for a model (USD per 1M tokens); earlier versions stay as history."""
    values = {"prompt": usd(prompt), "completion": usd(completion), "request": usd(request)}
    values["cached_prompt"] = None if cached_prompt in (None, "") else usd(cached_prompt)
    if any(v is not None and v < ZERO for v in values.values()):
        raise ValueError("prices cannot be negative")
    return Price.objects.create(
        model_id=model_id, effective_from=effective_from or timezone.now(), created_by=created_by, **values
    )
