"""Admin actions for the billing jobs, ready to attach to their ModelAdmins; each calls a service and logs.

- ReconciliationRunAdmin: `run_reconciliation_now` (the selection is ignored: it starts a fresh run).
- ReconciliationFindingAdmin: `repair_findings`, after a confirmation with a reason.
- LowBalanceAlertAdmin: `retry_failed_alerts`.
Each names the permission it needs (`permissions`, for whom it is offered) and checks it again itself.
Periodic tasks keep django-celery-beat's own actions, behind permissions (`billing/admin/jobs.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery.result import EagerResult
from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet

from core.admin_guard import action_confirmed, permission_required
from core.usd import usd_exact

from .alerts import low_balance_alert_retry
from .models import LowBalanceAlert, ReconciliationFinding, ReconciliationRun
from .reconciliation import finding_repair
from .services import BillingError
from .tasks import low_balance_deliver_task, reconcile_task

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


@admin.action(description="Run reconciliation now", permissions=["run"])
def run_reconciliation_now(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ReconciliationRun]
) -> None:
    """Queue a full reconciliation run (synchronous when Celery runs eagerly)."""
    permission_required(request, "billing.run_reconciliation")
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


@admin.action(description="Repair selected findings (ledger adjustment or cache recompute)…", permissions=["repair"])
def repair_findings(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ReconciliationFinding]
) -> HttpResponse | None:
    """Apply the registered repair of each selected finding and log it, with the reason, on its history."""
    permission_required(request, "billing.repair_finding")
    findings = list(queryset.select_related("account", "run").order_by("pk"))
    page, reason = action_confirmed(
        modeladmin,
        request,
        findings,
        title=f"Repair {len(findings)} finding(s)",
        consequence=(
            "Each finding gets the repair registered for its kind: a ledger adjustment in your name, a cached "
            "balance recomputed from the ledger, or a hold settled or released. Kinds without a repair are reported."
        ),
        lines=[
            f"#{finding.pk} {finding.kind}: {finding.detail[:120]}"
            + (f" ({usd_exact(finding.amount)})" if finding.amount is not None else "")
            for finding in findings
        ],
    )
    if page is not None:
        return page
    for finding in findings:
        try:
            outcome = finding_repair(finding=finding, by=request.user)
        except (ValueError, BillingError, ObjectDoesNotExist) as exc:
            modeladmin.message_user(request, f"Finding #{finding.pk}: {exc}", messages.ERROR)
            continue
        modeladmin.log_change(request, finding, f"repaired: {outcome}. Reason: {reason}")
        modeladmin.message_user(request, f"Finding #{finding.pk}: {outcome}", messages.SUCCESS)
    return None


@admin.action(description="Retry delivery of selected failed alerts", permissions=["retry"])
def retry_failed_alerts(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[LowBalanceAlert]
) -> None:
    """Make failed alerts pending again and queue their delivery (sent ones are never sent again)."""
    permission_required(request, "billing.retry_lowbalancealert")
    retried = 0
    for alert in queryset:
        if low_balance_alert_retry(alert=alert):
            retried += 1
            modeladmin.log_change(request, alert, "delivery retry requested")
            low_balance_deliver_task.delay(alert.pk)
    modeladmin.message_user(request, f"{retried} failed alert(s) queued for delivery; others were left as they are.")
