"""What operators touch: the `reconcile` command, the beat schedule rows and the admin actions."""

from __future__ import annotations

import importlib
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.cache import SessionStore
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django_celery_beat.models import PeriodicTask

from accounts.models import Account
from billing.admin_actions import repair_findings, retry_failed_alerts, run_reconciliation_now
from billing.models import LedgerEntry, LowBalanceAlert, ReconciliationFinding, ReconciliationRun
from billing.reconciliation import reconcile_run
from completions.models import Generation
from mlrouter.celery import app as celery_app
from tests.factories import funded_account
from tests.jobs.conftest import make_generation


def reconcile(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("reconcile", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


@pytest.mark.django_db
def test_reconcile_command_exits_0_when_the_books_are_clean():
    funded_account("10.00")
    code, output = reconcile()
    assert code == 0
    assert "clean" in output.splitlines()[-1]


@pytest.mark.django_db
def test_reconcile_command_prints_each_finding_and_exits_1():
    account = funded_account("10.00")
    Account.objects.filter(pk=account.pk).update(balance=Decimal("11"))
    generation = make_generation(account, status=Generation.Status.COMPLETED, cost="0.002")

    code, output = reconcile("--lookback-hours", "24")

    assert code == 1
    assert f"balance_mismatch: account #{account.pk} +1.0000000000 USD" in output
    assert f"charge_missing: account #{account.pk} {generation.pk} -0.0020000000 USD" in output
    assert ReconciliationRun.objects.get().trigger == "cli"


@pytest.mark.django_db
def test_reconcile_command_refuses_a_nonpositive_lookback():
    with pytest.raises(CommandError):
        call_command("reconcile", "--lookback-hours", "0")


@pytest.mark.django_db
def test_the_migrations_schedule_the_jobs_editable_in_admin():
    assert ("billing", "0004_periodic_tasks") in MigrationRecorder(connection).applied_migrations()
    # Transactional tests elsewhere flush these rows; running the migration again is a no-op otherwise.
    schedule = importlib.import_module("billing.migrations.0004_periodic_tasks")
    audit = importlib.import_module("billing.migrations.0010_reconciliation_audit_schedule")
    for _ in range(2):
        schedule.forward(apps, None)
        audit.forward(apps, None)
    celery_app.loader.import_default_modules()

    rows = {t.name: t for t in PeriodicTask.objects.select_related("interval", "crontab")}

    reconcile_row, sweep_row = rows["Reconcile usage"], rows["Low-balance alert sweep"]
    assert (reconcile_row.task, reconcile_row.interval.every, reconcile_row.interval.period) == (
        "billing.tasks.reconcile_task",
        5,
        "minutes",
    )
    # Incremental from the last checkpoint (billing/reconciliation.py), and a full audit every night.
    assert json.loads(reconcile_row.kwargs) == {"trigger": "schedule"}
    audit_row = rows["Reconciliation full audit"]
    assert (audit_row.task, audit_row.crontab.hour, audit_row.crontab.minute) == (
        "billing.tasks.reconcile_task",
        "3",
        "30",
    )
    assert json.loads(audit_row.kwargs) == {"trigger": "audit", "full": True}
    assert (sweep_row.task, sweep_row.interval.every) == ("billing.tasks.low_balance_sweep_task", 10)
    assert reconcile_row.enabled and sweep_row.enabled and audit_row.enabled
    assert {reconcile_row.task, sweep_row.task} <= set(celery_app.tasks)
    assert PeriodicTask.objects.filter(task__startswith="billing.tasks.").count() == 3


def admin_request(rf, user, **data):
    request = rf.post("/admin/", data)
    request.user = user
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


@pytest.mark.django_db
def test_run_reconciliation_now_runs_one_and_reports_it(rf, admin_user, eager_celery):
    funded_account("10.00")
    request = admin_request(rf, admin_user)

    run_reconciliation_now(admin.ModelAdmin(ReconciliationRun, admin.site), request, ReconciliationRun.objects.none())

    run = ReconciliationRun.objects.get()
    assert (run.trigger, run.status) == ("admin", "clean")
    assert [str(m) for m in get_messages(request)] == [f"Reconciliation #{run.pk}: clean, 0 finding(s)."]


@pytest.mark.django_db
def test_repair_findings_posts_the_fix_and_logs_it_under_the_operator(rf, admin_user):
    account = funded_account("10.00")
    make_generation(account, status=Generation.Status.COMPLETED, cost="0.002")
    Account.objects.filter(pk=account.pk).update(held=Decimal("0.1"))
    reconcile_run(trigger="test")
    findings = admin.ModelAdmin(ReconciliationFinding, admin.site)
    page = repair_findings(findings, admin_request(rf, admin_user), ReconciliationFinding.objects.order_by("pk"))
    assert page.status_code == 200  # the confirmation: nothing repaired yet
    assert not LedgerEntry.objects.filter(kind="adjustment").exists()
    request = admin_request(rf, admin_user, post="yes", reason="charge lost by a test")

    repair_findings(findings, request, ReconciliationFinding.objects.order_by("pk"))

    fix = LedgerEntry.objects.get(kind="adjustment")
    assert (fix.amount, fix.created_by) == (Decimal("-0.002"), admin_user)
    account.refresh_from_db()
    assert (account.balance, account.held) == (Decimal("9.998"), Decimal("0"))
    logs = LogEntry.objects.filter(user=admin_user, change_message__startswith="repaired:")
    assert [log.change_message.endswith("Reason: charge lost by a test") for log in logs] == [True, True]
    assert reconcile_run(trigger="test").status == ReconciliationRun.Status.CLEAN


@pytest.mark.django_db
def test_retry_failed_alerts_requeues_only_failed_ones(rf, admin_user, channels, eager_celery, mailoutbox):
    account = funded_account("0.50")
    failed = LowBalanceAlert.objects.create(
        account=account, crossing="initial", channel="email", status="failed", balance=1, threshold=1, attempts=6
    )
    sent = LowBalanceAlert.objects.create(
        account=account, crossing="entry:1", channel="email", status="sent", balance=1, threshold=1, attempts=1
    )
    request = admin_request(rf, admin_user)

    retry_failed_alerts(admin.ModelAdmin(LowBalanceAlert, admin.site), request, LowBalanceAlert.objects.all())

    failed.refresh_from_db()
    sent.refresh_from_db()
    assert (failed.status, failed.attempts, sent.attempts) == ("sent", 7, 1)
    assert len(mailoutbox) == 1
