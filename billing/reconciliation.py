"""Usage reconciliation: prove the books, close what dead workers left open, record every finding.

A run checks that every cached `balance` equals its ledger sum and every cached `held` its open holds.

Runs are incremental, so that one stays fast however long the history grows: a completed run leaves a
checkpoint (its `ledger_mark` and `hold_mark`, and each account's ledger sum up to the mark in
`LedgerCheckpoint`); the next run proves each balance from that sum plus the entries after the mark, and
checks only the generations charged or held since (`references_changed`). A full audit sums the whole
ledger and checks every generation: the first run, a run asked for with `full=True` (its own daily beat
schedule) and, when `RECONCILE_FULL_EVERY_RUNS` is set, every that-many-th run. A run with a lookback
window checks that window's generations and leaves the checkpoint where it was.
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

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import DecimalField, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.db.models.query import RawQuerySet
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from accounts.models import Account

from .models import Hold, LedgerCheckpoint, LedgerEntry, ReconciliationFinding, ReconciliationRun
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


def reconcile_run(
    *, trigger: str = "schedule", lookback: timedelta | None = None, full: bool | None = None
) -> ReconciliationRun | None:
    """Run the reconciliation now and return its run; None when another run holds the lock.

    `full`: True audits everything, False checks only what changed since the checkpoint (a full audit
    when there is none yet), None lets `RECONCILE_FULL_EVERY_RUNS` decide.
    """
    _discover()
    with _exclusive() as acquired:
        if not acquired:
            log.info("reconciliation skipped: another run is in progress")
            return None
        checkpoint = checkpoint_last()
        scope = _scope(checkpoint, lookback, full)
        # Created outside any fix's transaction so operators see the run while it works.
        run = ReconciliationRun.objects.create(trigger=trigger[:32], scope=scope)
        run.checkpoint = checkpoint if scope == ReconciliationRun.Scope.INCREMENTAL else None
        # Taken before the checks: what is written while they work is the next run's to check.
        marks = _marks_now()
        since = timezone.now() - lookback if lookback else None
        counts: dict[str, Any] = {
            "scope": scope,
            "lookback_hours": lookback.total_seconds() / 3600 if lookback else None,
        }
        try:
            for check in _checks.values():
                counts.update(check(run, since))
            # Last, because the checks above may settle holds and so move balances and `held`.
            counts.update(_accounts_check(run))
        except Exception:
            _finish(run, counts, error=traceback.format_exc())
            raise
        _finish(run, counts, marks=None if scope == ReconciliationRun.Scope.LOOKBACK else marks)
    return run


def checkpoint_last() -> ReconciliationRun | None:
    """The last completed run that left a checkpoint (a failed run leaves none)."""
    completed = (ReconciliationRun.Status.CLEAN, ReconciliationRun.Status.FINDINGS)
    return ReconciliationRun.objects.filter(status__in=completed, ledger_mark__isnull=False).order_by("-pk").first()


def _scope(checkpoint: ReconciliationRun | None, lookback: timedelta | None, full: bool | None) -> str:
    if lookback:
        return ReconciliationRun.Scope.LOOKBACK
    # The checkpoint's sums are written with PostgreSQL's upsert; the demo's SQLite books are tiny anyway.
    if checkpoint is None or full or connection.vendor != "postgresql":
        return ReconciliationRun.Scope.FULL
    every = settings.RECONCILE_FULL_EVERY_RUNS
    if full is None and every > 0:
        last_full = (
            ReconciliationRun.objects.filter(scope=ReconciliationRun.Scope.FULL, ledger_mark__isnull=False)
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        since_full = ReconciliationRun.objects.filter(
            pk__gt=last_full or 0, scope=ReconciliationRun.Scope.INCREMENTAL, ledger_mark__isnull=False
        ).count()
        if since_full + 1 >= every:
            return ReconciliationRun.Scope.FULL
    return ReconciliationRun.Scope.INCREMENTAL


def _marks_now() -> tuple[int, int]:
    """Where the checkpoint this run leaves will stand: (ledger mark, hold mark).

    The ledger mark is the last entry written `RECONCILE_CHECKPOINT_LAG_SECONDS` ago, not the newest:
    ids are handed out before commit, so a newer id may be visible while an older one is still being
    written, and an entry left below the mark would be missing from the checkpoint's sums. The hold mark
    is the first hold the next run must look at: the oldest open now, else the next to be placed.
    """
    settled = timezone.now() - timedelta(seconds=settings.RECONCILE_CHECKPOINT_LAG_SECONDS)
    ledger = LedgerEntry.objects.filter(created_at__lte=settled).order_by("-created_at").values_list("pk", flat=True)
    newest_hold = Hold.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    # The open holds' ids through their partial index (few: requests in flight); MIN(id) in SQL could be
    # planned as a walk up the primary key through every closed hold.
    open_ids = Hold.objects.filter(status=Hold.Status.OPEN).order_by().values_list("pk", flat=True)
    return ledger.first() or 0, min([*open_ids, newest_hold + 1])


def references_changed(run: ReconciliationRun, also: QuerySet | None = None) -> list[str] | None:
    """For an incremental run, the generation ids to check: charged, or held, since the checkpoint, and the
    references `also` selects; None for a full or lookback run (check them all).

    Read once (ranges of two primary keys) and handed back as a list, so that checks look generations up
    by id: a subquery there could be planned as a scan of every generation.
    """
    checkpoint = getattr(run, "checkpoint", None)
    if checkpoint is None:
        return None
    charged = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CHARGE, pk__gt=checkpoint.ledger_mark)
    held = Hold.objects.filter(pk__gte=checkpoint.hold_mark or 0)
    changed = (
        charged.order_by()
        .values_list("reference", flat=True)
        .union(held.order_by().values_list("reference", flat=True))
    )
    if also is not None:
        changed = changed.union(also)
    return list(changed)


def _finish(
    run: ReconciliationRun, counts: dict[str, Any], error: str = "", marks: tuple[int, int] | None = None
) -> None:
    counts["findings"] = run.findings.count()
    run.counts = counts
    run.error = error
    if error:
        run.status = ReconciliationRun.Status.FAILED
    else:
        run.status = ReconciliationRun.Status.FINDINGS if counts["findings"] else ReconciliationRun.Status.CLEAN
    run.finished_at = timezone.now()
    fields = ["counts", "error", "status", "finished_at"]
    with transaction.atomic():
        if marks is not None and not error:
            # The checkpoint moves with the run that completed, in one transaction, or not at all.
            run.ledger_mark, run.hold_mark = _checkpoint_advance(run, marks)
            fields += ["ledger_mark", "hold_mark"]
        run.save(update_fields=fields)
    log.info("reconciliation #%s %s: %s", run.pk, run.status, counts)


def _checkpoint_advance(run: ReconciliationRun, marks: tuple[int, int]) -> tuple[int, int]:
    """Fold the ledger entries up to the new mark into each account's checkpoint sum; return the marks."""
    previous = getattr(run, "checkpoint", None)
    ledger_mark, hold_mark = marks
    table, ledger = LedgerCheckpoint._meta.db_table, LedgerEntry._meta.db_table
    with connection.cursor() as cursor:
        if previous is None:  # a full audit sums the whole ledger again
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 (table names come from the models)
            cursor.execute(
                f"INSERT INTO {table} (account_id, total) SELECT account_id, SUM(amount) FROM {ledger} "  # noqa: S608
                "WHERE id <= %s GROUP BY account_id",
                [ledger_mark],
            )
            return ledger_mark, hold_mark
        ledger_mark = max(ledger_mark, previous.ledger_mark)
        cursor.execute(
            f"INSERT INTO {table} (account_id, total) SELECT account_id, SUM(amount) FROM {ledger} "  # noqa: S608
            "WHERE id > %s AND id <= %s GROUP BY account_id ON CONFLICT (account_id) DO UPDATE "
            f"SET total = {table}.total + EXCLUDED.total",
            [previous.ledger_mark, ledger_mark],
        )
    return ledger_mark, hold_mark


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


def accounts_out_of_balance_since(checkpoint: ReconciliationRun) -> RawQuerySet[Account]:
    """`accounts_out_of_balance` from a checkpoint: each ledger sum is the account's checkpoint sum plus
    its entries after the mark, not its whole history.

    Every account is checked, so a cached balance changed without an entry is found wherever it is; what
    is read grows with the accounts and the entries since the mark (a range of the primary key), and the
    open holds (their partial index), not with the history. One statement, hence one snapshot.
    """
    accounts, checkpoints = Account._meta.db_table, LedgerCheckpoint._meta.db_table
    ledger, holds = LedgerEntry._meta.db_table, Hold._meta.db_table
    sql = f"""
        SELECT a.*, COALESCE(c.total, 0) + COALESCE(n.total, 0) AS ledger_total, COALESCE(h.total, 0) AS holds_total
        FROM {accounts} a
        LEFT JOIN {checkpoints} c ON c.account_id = a.id
        LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM {ledger} WHERE id > %s GROUP BY account_id) n
            ON n.account_id = a.id
        LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM {holds} WHERE status = %s GROUP BY account_id) h
            ON h.account_id = a.id
        WHERE a.balance <> COALESCE(c.total, 0) + COALESCE(n.total, 0) OR a.held <> COALESCE(h.total, 0)
        ORDER BY a.id
    """  # noqa: S608 (table names come from the models)
    return Account.objects.raw(sql, [checkpoint.ledger_mark, Hold.Status.OPEN])


def _accounts_check(run: ReconciliationRun) -> dict[str, int]:
    balances = helds = 0
    checkpoint = getattr(run, "checkpoint", None)
    found = accounts_out_of_balance() if checkpoint is None else accounts_out_of_balance_since(checkpoint)
    for account in found:
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
