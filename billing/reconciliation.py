"""Usage reconciliation: prove the books, close what dead workers left open, record every finding.

A run checks that every cached `balance` equals its ledger sum and every cached `held` its open holds.
Other apps add checks and repairs from their own `reconciliation` module (`register_check`,
`register_fixer`), discovered the way admin discovers `admin` modules, so billing never imports
completions. Nothing that moves money is fixed silently: a fix is a ledger entry whose memo names the
finding, and the one repair without an entry, `account_balance_recompute`, only realigns a cache with
the ledger it caches.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import DecimalField, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from accounts.models import Account

from .models import Hold, LedgerEntry, ReconciliationFinding, ReconciliationRun
from .money import ZERO
from .selectors import ledger_sum, open_holds_sum

log = logging.getLogger(__name__)

BALANCE_MISMATCH = "balance_mismatch"
HELD_MISMATCH = "held_mismatch"

MONEY = DecimalField(max_digits=20, decimal_places=10)
# One reconciliation at a time across every worker and host ("mlrecon" in ASCII).
ADVISORY_LOCK_KEY = 0x6D6C_7265_636F_6E

# A check gets the run and the oldest start time of generations to look at (None: all of them) and
# returns counts for the run; a fixer repairs one finding and says what it did.
Check = Callable[[ReconciliationRun, datetime | None], dict[str, Any]]
Fixer = Callable[..., str]

_checks: dict[str, Check] = {}
_fixers: dict[str, Fixer] = {}


def register_check(name: str, check: Check) -> None:
    """Add a check to every run; checks run in registration order, before the account totals."""
    _checks[name] = check


def register_fixer(kind: str, fixer: Fixer) -> None:
    """Name the repair for findings of `kind`: `fixer(finding=..., by=...) -> str`."""
    _fixers[kind] = fixer


def _discover() -> None:
    autodiscover_modules("reconciliation")


@contextmanager
def _exclusive() -> Iterator[bool]:
    """Yield whether this process got the reconciliation lock (PostgreSQL advisory lock, not waiting)."""
    if connection.vendor != "postgresql":
        # SQLite (the demo) has one writer at a time, and every fix is idempotent by key anyway.
        yield True
        return
    if connection.in_atomic_block:
        # Inside a caller's transaction the lock lives exactly as long as that transaction.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
            yield bool(cursor.fetchone()[0])
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])


def reconcile_run(*, trigger: str = "schedule", lookback: timedelta | None = None) -> ReconciliationRun | None:
    """Run the reconciliation now and return its run; None when another run holds the lock."""
    _discover()
    with _exclusive() as acquired:
        if not acquired:
            log.info("reconciliation skipped: another run is in progress")
            return None
        # Created outside any fix's transaction so operators see the run while it works.
        run = ReconciliationRun.objects.create(trigger=trigger[:32])
        since = timezone.now() - lookback if lookback else None
        counts: dict[str, Any] = {"lookback_hours": lookback.total_seconds() / 3600 if lookback else None}
        try:
            for check in _checks.values():
                counts.update(check(run, since))
            # Last, because the checks above may settle holds and so move balances and `held`.
            counts.update(_accounts_check(run))
        except Exception:
            _finish(run, counts, error=traceback.format_exc())
            raise
        _finish(run, counts)
    return run


def _finish(run: ReconciliationRun, counts: dict[str, Any], error: str = "") -> None:
    counts["findings"] = run.findings.count()
    run.counts = counts
    run.error = error
    if error:
        run.status = ReconciliationRun.Status.FAILED
    else:
        run.status = ReconciliationRun.Status.FINDINGS if counts["findings"] else ReconciliationRun.Status.CLEAN
    run.finished_at = timezone.now()
    run.save(update_fields=["counts", "error", "status", "finished_at"])
    log.info("reconciliation #%s %s: %s", run.pk, run.status, counts)


def finding_record(
    *,
    run: ReconciliationRun,
    kind: str,
    detail: str,
    account_id: int | None = None,
    reference: str = "",
    amount: Decimal | None = None,
    fix_entry: LedgerEntry | None = None,
) -> ReconciliationFinding:
    """Record one finding of a run."""
    return ReconciliationFinding.objects.create(
        run=run,
        kind=kind,
        detail=detail,
        account_id=account_id,
        reference=reference,
        amount=amount,
        fix_entry=fix_entry,
    )


def subquery_sum(rows: QuerySet, field: str) -> Coalesce:
    """Return the sum of `field` over correlated `rows` (grouped by their outer reference), zero when none."""
    return Coalesce(Subquery(rows.annotate(s=Sum(field)).values("s")), Value(ZERO), output_field=MONEY)


def accounts_out_of_balance() -> QuerySet[Account]:
    """Return accounts whose cached balance or held differs from their ledger or open holds.

    One statement, hence one snapshot: a charge committing meanwhile cannot show up as a false mismatch.
    """
    ledger = LedgerEntry.objects.filter(account=OuterRef("pk")).order_by().values("account")
    holds = Hold.objects.filter(account=OuterRef("pk"), status=Hold.Status.OPEN).order_by().values("account")
    return (
        Account.objects.annotate(ledger_total=subquery_sum(ledger, "amount"), holds_total=subquery_sum(holds, "amount"))
        .filter(~Q(balance=F("ledger_total")) | ~Q(held=F("holds_total")))
        .order_by("pk")
    )


def _accounts_check(run: ReconciliationRun) -> dict[str, int]:
    balances = helds = 0
    for account in accounts_out_of_balance():
        if account.balance != account.ledger_total:
            balances += 1
            finding_record(
                run=run,
                kind=BALANCE_MISMATCH,
                account_id=account.pk,
                amount=account.balance - account.ledger_total,
                detail=f"cached balance {account.balance} USD but the ledger sums to {account.ledger_total} USD",
            )
        if account.held != account.holds_total:
            helds += 1
            finding_record(
                run=run,
                kind=HELD_MISMATCH,
                account_id=account.pk,
                amount=account.held - account.holds_total,
                detail=f"cached held {account.held} USD but open holds sum to {account.holds_total} USD",
            )
    return {"accounts_checked": Account.objects.count(), "balance_mismatches": balances, "held_mismatches": helds}


def _note(finding: ReconciliationFinding, text: str, by: AbstractBaseUser | None) -> None:
    who = f" by {by.get_username()}" if by is not None else ""
    finding.detail = f"{finding.detail}\n[{timezone.now():%Y-%m-%d %H:%M:%S} UTC{who}] {text}"
    finding.save(update_fields=["detail"])


def _locked_account_for(finding: ReconciliationFinding, kind: str, account: Account) -> Account:
    if finding.kind != kind or finding.account_id != account.pk:
        raise ValueError(f"finding #{finding.pk} is not a {kind} of account #{account.pk}")
    return Account.objects.select_for_update().get(pk=account.pk)


@transaction.atomic
def account_balance_recompute(
    *, account: Account, finding: ReconciliationFinding, by: AbstractBaseUser | None = None
) -> Decimal:
    """Set a drifted cached balance to the ledger sum; only reconciliation may call this.

    The one change of `Account.balance` without a new ledger entry, and not a money movement: the ledger
    is the truth and is left as it is; the cache is realigned with it under the account's row lock
    (which every entry-appending service takes first) and the repair is noted on the finding.
    """
    return _cache_recompute(
        account, finding, by, kind=BALANCE_MISMATCH, field="balance", truth=ledger_sum, source="the ledger"
    )


@transaction.atomic
def account_held_recompute(
    *, account: Account, finding: ReconciliationFinding, by: AbstractBaseUser | None = None
) -> Decimal:
    """Set a drifted cached `held` to the sum of open holds; only reconciliation may call this."""
    # Placing or closing a hold updates the account row first, so under this lock the holds stand still.
    return _cache_recompute(
        account, finding, by, kind=HELD_MISMATCH, field="held", truth=open_holds_sum, source="the open holds"
    )


def _cache_recompute(
    account: Account,
    finding: ReconciliationFinding,
    by: AbstractBaseUser | None,
    *,
    kind: str,
    field: str,
    truth: Callable[[Account], Decimal],
    source: str,
) -> Decimal:
    """Realign one cached sum of an account with what it sums, under the account's row lock."""
    locked = _locked_account_for(finding, kind, account)
    total = truth(locked)
    cached = getattr(locked, field)
    if cached == total:
        _note(finding, f"{field} already equals {source}: {total} USD; nothing changed", by)
    else:
        Account.objects.filter(pk=locked.pk).update(**{field: total})
        _note(finding, f"cached {field} {cached} USD recomputed from {source}: {total} USD", by)
    setattr(account, field, total)
    return total


def finding_repair(*, finding: ReconciliationFinding, by: AbstractBaseUser | None = None) -> str:
    """Apply the repair registered for the finding's kind and say what it did; ValueError if none."""
    _discover()
    fixer = _fixers.get(finding.kind)
    if fixer is None:
        raise ValueError(f"findings of kind {finding.kind!r} have no repair; they are for operators to read")
    return fixer(finding=finding, by=by)


def _balance_fixer(*, finding: ReconciliationFinding, by: AbstractBaseUser | None = None) -> str:
    total = account_balance_recompute(account=finding.account, finding=finding, by=by)
    return f"balance of #{finding.account_id} set to its ledger sum {total} USD"


def _held_fixer(*, finding: ReconciliationFinding, by: AbstractBaseUser | None = None) -> str:
    total = account_held_recompute(account=finding.account, finding=finding, by=by)
    return f"held of #{finding.account_id} set to its open holds {total} USD"


register_fixer(BALANCE_MISMATCH, _balance_fixer)
register_fixer(HELD_MISMATCH, _held_fixer)
