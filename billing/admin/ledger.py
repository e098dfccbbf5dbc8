"""The ledger and the holds against it: read-only, except that an operator may release an open hold."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.text import Truncator

from core.admin import BoundedCountPaginator, IdSearchMixin, ReadOnlyMixin, admin_link, usd_cell
from core.usd import usd_exact

from ..models import Hold, LedgerEntry
from ..services import hold_release

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyMixin, IdSearchMixin, admin.ModelAdmin[LedgerEntry]):
    """The append-only ledger: nobody adds, edits or deletes an entry here, superusers included."""

    list_display = (
        "id",
        "created_at",
        "account_link",
        "kind",
        "amount_cell",
        "balance_after_cell",
        "reference",
        "memo_short",
        "created_by",
    )
    list_filter = ("kind", "created_at")
    search_fields = ("account__name", "reference__exact", "idempotency_key__exact", "memo")
    search_id_fields = ("account_id",)
    list_select_related = ("account", "created_by")
    autocomplete_fields = ("account", "created_by")
    date_hierarchy = "created_at"
    show_full_result_count = False
    paginator = BoundedCountPaginator
    fields = (
        "account_link",
        "kind",
        "amount_display",
        "balance_after_display",
        "reference",
        "idempotency_key",
        "memo",
        "created_by",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: LedgerEntry) -> str:
        return admin_link(obj.account)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: LedgerEntry) -> str:
        return usd_exact(obj.amount)

    @admin.display(description="balance after")
    def balance_after_display(self, obj: LedgerEntry) -> str:
        return usd_exact(obj.balance_after)

    @admin.display(description="amount", ordering="amount")
    def amount_cell(self, obj: LedgerEntry) -> str:
        return usd_cell(obj.amount)

    @admin.display(description="balance after")
    def balance_after_cell(self, obj: LedgerEntry) -> str:
        return usd_cell(obj.balance_after)

    @admin.display(description="memo")
    def memo_short(self, obj: LedgerEntry) -> str:
        return Truncator(obj.memo).chars(60)


class ExpiredOpenFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expired"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "expired but open")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Hold]) -> QuerySet[Hold]:
        if self.value() == "yes":
            return queryset.filter(status=Hold.Status.OPEN, expires_at__lt=timezone.now())
        return queryset


@admin.register(Hold)
class HoldAdmin(ReadOnlyMixin, IdSearchMixin, admin.ModelAdmin[Hold]):
    list_display = (
        "id",
        "account_link",
        "amount_display",
        "reference",
        "status",
        "created_at",
        "expires_at",
        "closed_at",
        "close_reason",
    )
    list_filter = ("status", ExpiredOpenFilter)
    search_fields = ("reference__exact", "account__name")
    search_id_fields = ("account_id",)
    list_select_related = ("account",)
    autocomplete_fields = ("account", "ledger_entry")
    date_hierarchy = "created_at"
    show_full_result_count = False
    paginator = BoundedCountPaginator
    actions = ("release_selected",)

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: Hold) -> str:
        return admin_link(obj.account)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Hold) -> str:
        return usd_cell(obj.amount)

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_hold")

    @admin.action(description="Release selected open holds…", permissions=["release"])
    def release_selected(self, request: HttpRequest, queryset: QuerySet[Hold]) -> HttpResponse | None:
        holds = queryset.filter(status=Hold.Status.OPEN).select_related("account")
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Release holds",
                "holds": [(hold, usd_exact(hold.amount)) for hold in holds],
                "now": timezone.now(),
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/billing/hold/release_confirmation.html", context)
        reason = f"released by {request.user.get_username()} in admin"
        released = 0
        for hold in holds:
            if hold_release(reference=hold.reference, reason=reason):
                self.log_change(request, hold, f"Released {usd_exact(hold.amount)}: {reason}.")
                released += 1
        self.message_user(request, f"Released {released} hold(s).", messages.SUCCESS)
        return None
