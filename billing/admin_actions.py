"""Admin actions for the billing jobs, ready to attach to their ModelAdmins; each calls a service and logs.

- ReconciliationRunAdmin: `run_reconciliation_now` (the selection is ignored: it starts a fresh run).
- ReconciliationFindingAdmin: `repair_findings`.
- LowBalanceAlertAdmin: `retry_failed_alerts`.
Periodic tasks already have django-celery-beat's own "Run selected tasks" (it honours eager mode).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery.result import EagerResult
from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet

from .alerts import low_balance_alert_retry
from .models import LowBalanceAlert, ReconciliationFinding, ReconciliationRun
from .reconciliation import finding_repair
from .services import BillingError
from .tasks import low_balance_deliver_task, reconcile_task

if TYPE_CHECKING:
    from django.http import HttpRequest


@admin.action(description="Run reconciliation now")
def run_reconciliation_now(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ReconciliationRun]
) -> None:
    """Queue a full reconciliation run (synchronous when Celery runs eagerly)."""
    result = reconcile_task.delay(trigger="admin")
    if not isinstance(result, EagerResult):
        modeladmin.message_user(request, "Reconciliation queued; its run appears here within moments.")
        return
    run_id = result.get()
    if run_id is None:
        modeladmin.message_user(request, "Another reconciliation run is in progress.", messages.WARNING)
        return
    run = ReconciliationRun.objects.get(pk=run_id)
    level = messages.SUCCESS if run.status == ReconciliationRun.Status.CLEAN else messages.WARNING
    modeladmin.message_user(
        request, f"Reconciliation #{run.pk}: {run.status}, {run.counts.get('findings')} finding(s).", level
    )


@admin.action(description="Repair selected findings (ledger adjustment or cache recompute)")
def repair_findings(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ReconciliationFinding]
) -> None:
    """Apply the registered repair of each selected finding and log it on the finding's history."""
    for finding in queryset.select_related("account", "run"):
        try:
            outcome = finding_repair(finding=finding, by=request.user)
        except (ValueError, BillingError, ObjectDoesNotExist) as exc:
            modeladmin.message_user(request, f"Finding #{finding.pk}: {exc}", messages.ERROR)
            continue
        modeladmin.log_change(request, finding, f"repaired: {outcome}")
        modeladmin.message_user(request, f"Finding #{finding.pk}: {outcome}", messages.SUCCESS)


@admin.action(description="Retry delivery of selected failed alerts")
def retry_failed_alerts(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[LowBalanceAlert]
) -> None:
    """Make failed alerts pending again and queue their delivery (sent ones are never sent again)."""
    retried = 0
    for alert in queryset:
        if low_balance_alert_retry(alert=alert):
            retried += 1
            modeladmin.log_change(request, alert, "delivery retry requested")
            low_balance_deliver_task.delay(alert.pk)
    modeladmin.message_user(request, f"{retried} failed alert(s) queued for delivery; others were left as they are.")
