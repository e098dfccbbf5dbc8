"""Usage reconciliation: each finding comes from a crafted database state, and nothing is fixed silently."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.models import Account
from billing import reconciliation
from billing.models import Hold, LedgerEntry, ReconciliationFinding, ReconciliationRun
from billing.reconciliation import account_balance_recompute, account_held_recompute, finding_repair, reconcile_run
from billing.services import hold_place
from completions.models import Generation
from tests.factories import funded_account
from tests.jobs.conftest import charged_generation, expired_hold_for, make_generation

pytestmark = pytest.mark.django_db


def findings(run: ReconciliationRun) -> list[tuple[str, str, Decimal | None]]:
    return [(f.kind, f.reference, f.amount) for f in run.findings.order_by("pk")]


def test_consistent_books_give_a_clean_run_with_its_counts():
    account = funded_account("10.00")
    charged_generation(account, "0.0000123")
    make_generation(account, status=Generation.Status.FAILED)  # cost 0: its hold was released, no charge

    run = reconcile_run(trigger="test")

    assert run.status == ReconciliationRun.Status.CLEAN
    assert findings(run) == []
    assert run.finished_at is not None
    assert {k: run.counts[k] for k in ("accounts_checked", "generations_checked", "charge_findings", "findings")} == {
        "accounts_checked": 1,
        "generations_checked": 2,
        "charge_findings": 0,
        "findings": 0,
    }


def test_a_cached_balance_off_its_ledger_is_reported_and_left_alone():
    account = funded_account("10.00")
    Account.objects.filter(pk=account.pk).update(balance=Decimal("12.5"))

    run = reconcile_run(trigger="test")

    assert run.status == ReconciliationRun.Status.FINDINGS
    assert findings(run) == [("balance_mismatch", "", Decimal("2.5"))]
    assert run.findings.get().account_id == account.pk
    account.refresh_from_db()
    assert account.balance == Decimal("12.5")
    assert LedgerEntry.objects.count() == 1


def test_recomputing_a_drifted_balance_sets_it_to_the_ledger_sum_and_notes_it_on_the_finding():
    account = funded_account("10.00")
    Account.objects.filter(pk=account.pk).update(balance=Decimal("12.5"))
    finding = reconcile_run(trigger="test").findings.get()

    total = account_balance_recompute(account=account, finding=finding)

    account.refresh_from_db()
    finding.refresh_from_db()
    assert total == account.balance == Decimal("10")
    assert "cached balance 12.5000000000 USD recomputed from the ledger: 10.0000000000 USD" in finding.detail
    assert LedgerEntry.objects.count() == 1
    assert reconcile_run(trigger="test").status == ReconciliationRun.Status.CLEAN


def test_recompute_refuses_a_finding_about_another_account():
    account, other = funded_account("10.00"), funded_account("1.00")
    Account.objects.filter(pk=account.pk).update(balance=Decimal("12.5"))
    finding = reconcile_run(trigger="test").findings.get()
    with pytest.raises(ValueError):
        account_balance_recompute(account=other, finding=finding)


def test_a_cached_held_off_the_open_holds_is_reported_and_can_be_recomputed():
    account = funded_account("10.00")
    hold_place(account_id=account.pk, amount=Decimal("0.25"), reference="gen-1-open")
    Account.objects.filter(pk=account.pk).update(held=Decimal("0.75"))
    finding = reconcile_run(trigger="test").findings.get()
    assert (finding.kind, finding.amount) == ("held_mismatch", Decimal("0.5"))

    assert account_held_recompute(account=account, finding=finding) == Decimal("0.25")
    account.refresh_from_db()
    assert account.held == Decimal("0.25")
    assert reconcile_run(trigger="test").status == ReconciliationRun.Status.CLEAN


def test_a_finished_generation_without_its_charge_is_reported():
    account = funded_account("10.00")
    generation = make_generation(account, status=Generation.Status.COMPLETED, cost="0.002", prompt_tokens=10)
    make_generation(account, status=Generation.Status.PENDING, cost="0")  # in flight: nothing to charge yet

    run = reconcile_run(trigger="test")

    assert findings(run) == [("charge_missing", generation.pk, Decimal("-0.002"))]


def test_a_generation_charged_twice_is_reported():
    account = funded_account("10.00")
    generation = charged_generation(account, "0.003")
    _craft_second_charge(account, generation, Decimal("0.003"))

    run = reconcile_run(trigger="test")

    assert findings(run) == [("charge_duplicated", generation.pk, Decimal("0.003"))]


def test_a_charge_that_differs_from_the_generation_cost_is_reported():
    account = funded_account("10.00")
    generation = charged_generation(account, "0.001")
    Generation.objects.filter(pk=generation.pk).update(cost=Decimal("0.0015"))

    run = reconcile_run(trigger="test")

    assert findings(run) == [("charge_mismatch", generation.pk, Decimal("-0.0005"))]


def test_repairing_a_missing_charge_posts_one_adjustment_whose_memo_names_the_finding():
    account = funded_account("10.00")
    generation = make_generation(account, status=Generation.Status.COMPLETED, cost="0.002", prompt_tokens=10)
    first = reconcile_run(trigger="test").findings.get()
    second = reconcile_run(trigger="test").findings.get()  # still unrepaired: reported again

    finding_repair(finding=first)
    outcome = finding_repair(finding=second)
    again = finding_repair(finding=first)

    first.refresh_from_db()
    account.refresh_from_db()
    entry = first.fix_entry
    assert (entry.kind, entry.amount, entry.idempotency_key) == (
        "adjustment",
        Decimal("-0.002"),
        f"reconciliation-fix:{first.pk}",
    )
    assert f"reconciliation finding #{first.pk}" in entry.memo and generation.pk in entry.memo
    assert "nothing to repair" in outcome and "already repaired" in again
    assert account.balance == Decimal("9.998")
    assert LedgerEntry.objects.filter(kind="adjustment").count() == 1
    assert reconcile_run(trigger="test").status == ReconciliationRun.Status.CLEAN


def test_repairing_a_duplicate_charge_credits_the_extra_back_once():
    account = funded_account("10.00")
    generation = charged_generation(account, "0.003")
    _craft_second_charge(account, generation, Decimal("0.003"))
    finding = reconcile_run(trigger="test").findings.get()

    finding_repair(finding=finding)

    account.refresh_from_db()
    assert account.balance == Decimal("9.997")
    assert reconcile_run(trigger="test").status == ReconciliationRun.Status.CLEAN


def test_a_killed_workers_hold_is_settled_by_the_next_run_from_its_recorded_usage_exactly_once():
    account = funded_account("10.00")
    # 1000 prompt tokens at $0.15/1M + 500 completion tokens at $0.60/1M = $0.00045
    generation = make_generation(account, prompt_tokens=1000, completion_tokens=500)
    expired_hold_for(generation, "0.05")

    run = reconcile_run(trigger="test")
    later = reconcile_run(trigger="test")

    finding = run.findings.get()
    charge = LedgerEntry.objects.get(reference=generation.pk)
    hold = Hold.objects.get(reference=generation.pk)
    generation.refresh_from_db()
    account.refresh_from_db()
    assert (finding.kind, finding.amount, finding.fix_entry) == ("expired_hold_settled", Decimal("0.00045"), charge)
    assert (charge.kind, charge.amount, charge.idempotency_key) == (
        "charge",
        Decimal("-0.00045"),
        f"charge:{generation.pk}",
    )
    assert f"reconciliation {run.pk}: expired hold {generation.pk}" in charge.memo
    assert f"finding #{finding.pk}" in charge.memo
    assert (hold.status, hold.close_reason) == (
        "settled",
        f"reconciliation run {run.pk}: expired, settled from recorded usage",
    )
    assert (generation.status, generation.cost) == ("failed", Decimal("0.00045"))
    assert (account.balance, account.held) == (Decimal("9.99955"), Decimal("0"))
    assert run.counts["expired_holds_settled"] == 1
    assert later.status == ReconciliationRun.Status.CLEAN
    assert LedgerEntry.objects.filter(reference=generation.pk).count() == 1


def test_an_expired_hold_of_a_finished_generation_is_settled_at_its_cost_and_keeps_its_status():
    account = funded_account("10.00")
    generation = make_generation(account, status=Generation.Status.COMPLETED, cost="0.0042", completion_tokens=7)
    expired_hold_for(generation, "0.05")

    reconcile_run(trigger="test")

    generation.refresh_from_db()
    assert LedgerEntry.objects.get(reference=generation.pk).amount == Decimal("-0.0042")
    assert (generation.status, generation.cost) == ("completed", Decimal("0.0042"))


def test_an_expired_hold_with_nothing_known_is_released_and_its_generation_failed():
    account = funded_account("10.00")
    generation = make_generation(account)
    expired_hold_for(generation, "0.05")
    hold_place(account_id=account.pk, amount=Decimal("0.07"), reference="gen-0-orphan", ttl_seconds=-1)

    run = reconcile_run(trigger="test")

    generation.refresh_from_db()
    account.refresh_from_db()
    hold = Hold.objects.get(reference=generation.pk)
    assert findings(run) == [
        ("expired_hold_released", generation.pk, Decimal("0.05")),
        ("expired_hold_released", "gen-0-orphan", Decimal("0.07")),
    ]
    assert (hold.status, hold.close_reason) == ("released", f"reconciliation run {run.pk}: expired, nothing known")
    assert (generation.status, generation.cost) == ("failed", Decimal("0"))
    assert (account.balance, account.held) == (Decimal("10"), Decimal("0"))
    assert not LedgerEntry.objects.filter(kind="charge").exists()


def test_an_expired_hold_that_cannot_be_settled_is_reported_and_the_others_still_closed():
    account, other = funded_account("10.00"), funded_account("1.00")
    stuck = make_generation(account, prompt_tokens=1000)
    expired_hold_for(stuck, "0.05")
    later = make_generation(account)
    expired_hold_for(later, "0.05")
    # Its charge key already taken by an entry on another account: settling it must refuse.
    LedgerEntry.objects.create(
        account=other,
        kind="adjustment",
        amount=Decimal("1"),
        balance_after=Decimal("2"),
        idempotency_key=f"charge:{stuck.pk}",
    )
    Account.objects.filter(pk=other.pk).update(balance=Decimal("2"))

    run = reconcile_run(trigger="test")

    assert [(kind, ref) for kind, ref, _ in findings(run)] == [
        ("expired_hold_unresolved", stuck.pk),
        ("expired_hold_released", later.pk),
    ]
    assert "IdempotencyConflict" in run.findings.get(kind="expired_hold_unresolved").detail
    assert Hold.objects.get(reference=stuck.pk).status == "open"
    assert not LedgerEntry.objects.filter(reference=stuck.pk).exists()
    account.refresh_from_db()
    assert account.held == Decimal("0.05")


def test_a_hold_not_yet_expired_is_left_open():
    account = funded_account("10.00")
    generation = make_generation(account, prompt_tokens=10)
    hold_place(account_id=account.pk, amount=Decimal("0.05"), reference=generation.pk)

    assert reconcile_run(trigger="test").status == ReconciliationRun.Status.CLEAN
    assert Hold.objects.get(reference=generation.pk).status == "open"


def test_only_generations_in_the_lookback_window_are_checked():
    account = funded_account("10.00")
    make_generation(account, status=Generation.Status.COMPLETED, cost="0.002", finished_ago=timedelta(hours=3))

    assert reconcile_run(trigger="test", lookback=timedelta(hours=1)).status == ReconciliationRun.Status.CLEAN
    assert reconcile_run(trigger="test").status == ReconciliationRun.Status.FINDINGS


def test_a_check_that_crashes_leaves_a_failed_run_with_its_error(monkeypatch):
    def broken(run, since):
        raise RuntimeError("upstream lookup exploded")

    monkeypatch.setitem(reconciliation._checks, "broken", broken)
    with pytest.raises(RuntimeError):
        reconcile_run(trigger="test")
    run = ReconciliationRun.objects.get()
    assert run.status == ReconciliationRun.Status.FAILED
    assert "upstream lookup exploded" in run.error


def test_findings_without_a_repair_are_refused():
    finding = ReconciliationFinding(kind="low_margin", detail="x")
    with pytest.raises(ValueError):
        finding_repair(finding=finding)


def _craft_second_charge(account: Account, generation: Generation, cost: Decimal) -> None:
    """A state no service produces: a second charge for one generation (balance kept consistent)."""
    account.refresh_from_db()
    LedgerEntry.objects.create(
        account=account,
        kind=LedgerEntry.Kind.CHARGE,
        amount=-cost,
        balance_after=account.balance - cost,
        reference=generation.pk,
        idempotency_key=f"crafted-duplicate:{generation.pk}",
    )
    Account.objects.filter(pk=account.pk).update(balance=account.balance - cost)
