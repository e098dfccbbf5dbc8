"""The billing jobs' records: low-balance alerts, reconciliation runs (with "run now") and their findings,
and the schedules that run them (django-celery-beat's periodic tasks, behind permissions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.text import Truncator
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from core.admin import IdSearchMixin, ReadOnlyMixin, admin_link, usd_cell
from core.admin_guard import permission_required
from core.usd import usd_exact

from ..admin_actions import repair_findings, retry_failed_alerts, run_reconciliation_now
from ..models import LowBalanceAlert, ReconciliationFinding, ReconciliationRun

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse
    from django.template.response import TemplateResponse
    from django.urls import URLPattern


@admin.register(LowBalanceAlert)
class LowBalanceAlertAdmin(ReadOnlyMixin, IdSearchMixin, admin.ModelAdmin[LowBalanceAlert]):
    actions = (retry_failed_alerts,)
    list_display = (
        "id",
        "account_link",
        "channel",
        "status",
        "balance_display",
        "threshold_display",
        "attempts",
        "created_at",
        "sent_at",
    )
    list_filter = ("status", "channel", "created_at")
    search_fields = ("account__name", "crossing")
    search_id_fields = ("account_id",)
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    date_hierarchy = "created_at"

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.retry_lowbalancealert")

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: LowBalanceAlert) -> str:
        return admin_link(obj.account)

    @admin.display(description="available then", ordering="balance")
    def balance_display(self, obj: LowBalanceAlert) -> str:
        return usd_cell(obj.balance)

    @admin.display(description="threshold", ordering="threshold")
    def threshold_display(self, obj: LowBalanceAlert) -> str:
        return usd_cell(obj.threshold)


RUN_PAGE_FINDINGS = 20


def _count_text(value: object) -> str:
    """`1,234` for a count, `24` for a whole float, `—` for nothing."""
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int | float) else str(value)


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyMixin, admin.ModelAdmin[ReconciliationRun]):
    actions = (run_reconciliation_now,)
    change_list_template = "admin/billing/reconciliationrun/change_list.html"
    list_display = ("id", "trigger", "status", "findings_count", "started_at", "finished_at", "error_short")
    list_filter = ("status", "trigger", "started_at")
    search_fields = ("trigger", "error")
    date_hierarchy = "started_at"
    # A run may have hundreds of findings: its page shows the first few and links to their paginated list.
    fields = ("trigger", "status", "started_at", "finished_at", "counts_display", "findings_display", "error")
    readonly_fields = fields

    @admin.display(description="counts")
    def counts_display(self, obj: ReconciliationRun) -> str:
        rows = [(name.replace("_", " "), _count_text(value)) for name, value in (obj.counts or {}).items()]
        return render_to_string("admin/billing/reconciliationrun/counts.html", {"rows": rows})

    @admin.display(description="findings")
    def findings_display(self, obj: ReconciliationRun) -> str:
        total = obj.findings.count()
        url = f"{reverse('admin:billing_reconciliationfinding_changelist')}?run__id__exact={obj.pk}"
        findings = obj.findings.select_related("account").order_by("id")[:RUN_PAGE_FINDINGS]
        rows = [(finding, usd_exact(finding.amount)) for finding in findings]
        return render_to_string(
            "admin/billing/reconciliationrun/findings.html",
            {"rows": rows, "total": total, "url": url, "shown": min(total, RUN_PAGE_FINDINGS)},
        )

    @admin.display(description="findings", ordering="findings_count")
    def findings_count(self, obj: ReconciliationRun) -> int:
        return obj.findings_count  # type: ignore[attr-defined]

    @admin.display(description="error")
    def error_short(self, obj: ReconciliationRun) -> str:
        return Truncator(obj.error).chars(80)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReconciliationRun]:
        return super().get_queryset(request).annotate(findings_count=Count("findings"))

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.run_reconciliation")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        extra_context = {**(extra_context or {}), "can_run": self.has_run_permission(request)}
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        run_now = self.admin_site.admin_view(self.run_now_view)
        return [path("run-now/", run_now, name="billing_reconciliationrun_run_now"), *super().get_urls()]

    def run_now_view(self, request: HttpRequest) -> HttpResponse:
        """The changelist's "Run reconciliation now" button (works with no run listed yet)."""
        permission_required(request, "billing.view_reconciliationrun", "billing.run_reconciliation")
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:billing_reconciliationrun_changelist"))
        run_reconciliation_now(self, request, ReconciliationRun.objects.none())
        return HttpResponseRedirect(reverse("admin:billing_reconciliationrun_changelist"))


@admin.register(ReconciliationFinding)
class ReconciliationFindingAdmin(ReadOnlyMixin, IdSearchMixin, admin.ModelAdmin[ReconciliationFinding]):
    actions = (repair_findings,)
    list_display = ("id", "run", "kind", "account_link", "reference", "amount_display", "fix_entry", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("reference__exact", "detail", "account__name")
    search_id_fields = ("account_id", "run_id")
    list_select_related = ("run", "account", "fix_entry")
    autocomplete_fields = ("run", "account", "fix_entry")
    date_hierarchy = "created_at"

    def has_repair_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.repair_finding")

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: ReconciliationFinding) -> str:
        return admin_link(obj.account)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: ReconciliationFinding) -> str:
        return usd_cell(obj.amount)


def _beat_action(name: str, perm: str, description: str) -> Callable[..., HttpResponse | None]:
    """django-celery-beat's action `name`, offered for `permissions=[perm]` and checking it itself."""

    def action(
        modeladmin: PeriodicTaskAdminStrict, request: HttpRequest, queryset: QuerySet[PeriodicTask]
    ) -> HttpResponse | None:
        permission_required(request, f"django_celery_beat.{perm}_periodictask")
        return getattr(BeatPeriodicTaskAdmin, name)(modeladmin, request, queryset)

    action.__name__ = name
    return admin.action(description=description, permissions=[perm])(action)


# django-celery-beat's actions declare no permission, so any staff user who may view the schedules could
# disable or run them. Here enabling, disabling and toggling need "change", running needs "run".
admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class PeriodicTaskAdminStrict(BeatPeriodicTaskAdmin):
    actions = (
        _beat_action("enable_tasks", "change", "Enable selected tasks"),
        _beat_action("disable_tasks", "change", "Disable selected tasks"),
        _beat_action("toggle_tasks", "change", "Toggle activity of selected tasks"),
        _beat_action("run_tasks", "run", "Run selected tasks now"),
    )

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_celery_beat.run_periodictask")
