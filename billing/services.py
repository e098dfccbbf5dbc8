"""The ledger service: the only code that changes a balance.

Every function here is keyword-only and atomic. A balance changes only together with the ledger entry
that explains it (`_append`), and `Account.held` only together with the hold it sums. Each entry has a
unique idempotency key, so a replayed call — sequential or racing — changes nothing twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

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


def hold_place(*, account_id: int, amount: Decimal, reference: str, ttl_seconds: int | None = None) -> Hold:
    """Reserve `amount` for a request, or raise InsufficientFunds / AccountInactive.

    The reservation is one conditional UPDATE: PostgreSQL re-checks the condition under the row lock,
    so concurrent requests can never reserve more than the balance.
    """
    amount = usd(amount)
    if amount < ZERO:
        raise ValueError("a hold cannot be negative")
    needed = max(amount, settings.MIN_BALANCE_USD)
    now = timezone.now()
    with transaction.atomic():
        reserved = Account.objects.filter(
            pk=account_id, status=Account.Status.ACTIVE, balance__gte=F("held") + needed
        ).update(held=F("held") + amount)
        if not reserved:
            account = Account.objects.only("status", "balance", "held").get(pk=account_id)
            if account.status != Account.Status.ACTIVE:
                raise AccountInactive(f"account #{account_id} is {account.status}")
            raise InsufficientFunds(available=account.available, needed=needed)
        ttl = settings.HOLD_TTL_SECONDS if ttl_seconds is None else ttl_seconds
        return Hold.objects.create(
            account_id=account_id,
            amount=amount,
            reference=reference,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )


def _close(hold: Hold, *, status: str, reason: str, entry: LedgerEntry | None) -> None:
    Account.objects.filter(pk=hold.account_id).update(held=F("held") - hold.amount)
    hold.status = status
    hold.closed_at = timezone.now()
    hold.close_reason = reason
    hold.ledger_entry = entry
    hold.save(update_fields=["status", "closed_at", "close_reason", "ledger_entry"])


@transaction.atomic
def hold_settle(*, reference: str, cost: Decimal, memo: str = "", reason: str = "settled") -> LedgerEntry:
    """Charge the real cost of a request and close its hold, exactly once.

    The charge never exceeds the hold (the worst case the request was allowed to spend). Settling a
    closed hold changes nothing and returns the charge it was settled with.
    """
    hold = Hold.objects.select_for_update().get(reference=reference)
    key = f"charge:{reference}"
    if hold.status != Hold.Status.OPEN:
        entry = hold.ledger_entry or LedgerEntry.objects.filter(idempotency_key=key).first()
        if entry is None:
            raise BillingError(f"hold {reference} was released without a charge")
        return entry
    charge = min(usd(cost), hold.amount)
    if charge < ZERO:
        raise ValueError("a charge cannot be negative")
    entry = _append(
        account_id=hold.account_id,
        kind=LedgerEntry.Kind.CHARGE,
        amount=-charge,
        idempotency_key=key,
        reference=reference,
        memo=memo,
    )
    _close(hold, status=Hold.Status.SETTLED, reason=reason, entry=entry)
    account = entry.account_after
    # A charge is what drives a balance under its alert threshold: check right after it commits.
    low_balance_enqueue_on_commit(
        hold.account_id,
        available=account.balance - (account.held - hold.amount),
        threshold=account.low_balance_threshold,
    )
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
