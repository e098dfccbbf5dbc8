"""Incremental reconciliation: a run checks what changed since the last completed run's checkpoint, a full
audit checks everything, and the checkpoint moves only with a run that completed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.models import Account
from billing import reconciliation
from billing.models import LedgerCheckpoint, ReconciliationRun
from billing.reconciliation import checkpoint_last, reconcile_run
from billing.selectors import ledger_sum
from billing.services import hold_place, hold_release, ledger_credit
from completions.models import Generation
from tests.factories import funded_account
from tests.jobs.conftest import charged_generation, make_generation

pytestmark = pytest.mark.django_db

Scope = ReconciliationRun.Scope


@pytest.fixture(autouse=True)
def _no_lag(settings):
    # Entries written a moment ago are folded into the checkpoint at once (production waits a minute).
    settings.RECONCILE_CHECKPOINT_LAG_SECONDS = 0
    settings.RECONCILE_FULL_EVERY_RUNS = 0


def kinds(run: ReconciliationRun) -> list[str]:
    return [finding.kind for finding in run.findings.order_by("pk")]


def uncharged_since_released(account: Account, cost: str) -> Generation:
    """A generation the request path held, then released, yet recorded as completed with a cost."""
    generation = make_generation(account)
    hold_place(account_id=account.pk, amount=Decimal("0.50"), reference=generation.pk)
    hold_release(reference=generation.pk, reason="test")
    Generation.objects.filter(pk=generation.pk).update(status=Generation.Status.COMPLETED, cost=Decimal(cost))
    return generation


def test_the_first_run_is_a_full_audit_and_the_next_ones_are_incremental():
    account = funded_account("10.00")
    charged_generation(account, "0.01")

    first, second = reconcile_run(trigger="test"), reconcile_run(trigger="test")

    assert (first.scope, second.scope) == (Scope.FULL, Scope.INCREMENTAL)
    assert first.status == second.status == ReconciliationRun.Status.CLEAN
    assert first.counts["generations_checked"] == 1
    assert second.counts["generations_checked"] == 0  # nothing changed since
    assert checkpoint_last() == second


def test_the_checkpoint_sums_each_accounts_ledger_up_to_its_mark():
    account, other = funded_account("10.00"), funded_account("3.00")
    reconcile_run(trigger="test")
    charged_generation(account, "0.25")
    ledger_credit(account=other, amount=Decimal("1.5"), idempotency_key="test-incremental-credit")

    run = reconcile_run(trigger="test")

    assert run.scope == Scope.INCREMENTAL and run.counts["generations_checked"] == 1
    totals = dict(LedgerCheckpoint.objects.values_list("account_id", "total"))
    assert totals == {account.pk: ledger_sum(account), other.pk: ledger_sum(other)}
    assert totals == {account.pk: Decimal("9.75"), other.pk: Decimal("4.5")}


def test_a_balance_drift_after_the_checkpoint_is_found_by_the_next_incremental_run():
    account = funded_account("10.00")
    reconcile_run(trigger="test")
    Account.objects.filter(pk=account.pk).update(balance=Decimal("10.40"))

    run = reconcile_run(trigger="test")

    assert run.scope == Scope.INCREMENTAL
    assert kinds(run) == ["balance_mismatch"]
    assert run.findings.get().amount == Decimal("0.4")


def test_a_missing_charge_after_the_checkpoint_is_found_by_the_next_incremental_run():
    account = funded_account("10.00")
    charged_generation(account, "0.01")
    reconcile_run(trigger="test")
    generation = uncharged_since_released(account, "0.02")

    run = reconcile_run(trigger="test")

    assert run.scope == Scope.INCREMENTAL
    assert [(f.kind, f.reference) for f in run.findings.all()] == [("charge_missing", generation.pk)]


def test_a_mismatch_in_history_before_the_checkpoint_is_found_by_the_full_audit_only():
    account = funded_account("10.00")
    old = charged_generation(account, "0.01")
    reconcile_run(trigger="test")
    reconcile_run(trigger="test")
    # A stray write to a generation the checkpoint already covered: nothing new in the ledger or holds.
    Generation.objects.filter(pk=old.pk).update(cost=Decimal("0.05"))

    incremental = reconcile_run(trigger="test")
    audit = reconcile_run(trigger="audit", full=True)

    assert (incremental.scope, kinds(incremental)) == (Scope.INCREMENTAL, [])
    assert audit.scope == Scope.FULL
    assert [(f.kind, f.reference) for f in audit.findings.all()] == [("charge_mismatch", old.pk)]


def test_an_unrepaired_charge_finding_is_reported_by_every_incremental_run():
    account = funded_account("10.00")
    reconcile_run(trigger="test")
    uncharged_since_released(account, "0.02")

    runs = [reconcile_run(trigger="test") for _ in range(3)]

    assert [kinds(run) for run in runs] == [["charge_missing"]] * 3


def test_the_checkpoint_advances_only_with_a_completed_run(monkeypatch):
    account = funded_account("10.00")
    first = reconcile_run(trigger="test")
    before = dict(LedgerCheckpoint.objects.values_list("account_id", "total"))
    generation = uncharged_since_released(account, "0.02")
    ledger_credit(account=account, amount=Decimal("2"), idempotency_key="test-incremental-after")

    def broken(run, since):
        raise RuntimeError("the database went away")

    monkeypatch.setitem(reconciliation._checks, "broken", broken)
    with pytest.raises(RuntimeError):
        reconcile_run(trigger="test")
    failed = ReconciliationRun.objects.order_by("-pk").first()
    assert (failed.status, failed.ledger_mark) == (ReconciliationRun.Status.FAILED, None)
    assert checkpoint_last() == first
    assert dict(LedgerCheckpoint.objects.values_list("account_id", "total")) == before
    monkeypatch.delitem(reconciliation._checks, "broken")

    # The next run starts from the last completed checkpoint: what the failed run saw is checked again.
    run = reconcile_run(trigger="test")

    assert run.scope == Scope.INCREMENTAL
    assert [(f.kind, f.reference) for f in run.findings.all()] == [("charge_missing", generation.pk)]
    assert run.ledger_mark > first.ledger_mark
    assert LedgerCheckpoint.objects.get(account=account).total == Decimal("12")


def test_every_nth_run_is_a_full_audit_when_configured(settings):
    settings.RECONCILE_FULL_EVERY_RUNS = 3
    funded_account("10.00")

    scopes = [reconcile_run(trigger="test").scope for _ in range(7)]

    assert scopes == [Scope.FULL, Scope.INCREMENTAL, Scope.INCREMENTAL] * 2 + [Scope.FULL]


def test_a_lookback_run_leaves_the_checkpoint_where_it_was():
    funded_account("10.00")
    first = reconcile_run(trigger="test")

    lookback = reconcile_run(trigger="operator", lookback=timedelta(hours=1))

    assert (lookback.scope, lookback.ledger_mark) == (Scope.LOOKBACK, None)
    assert checkpoint_last() == first
