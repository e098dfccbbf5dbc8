"""The ledger and the holds against it: read-only, except that an operator may release an open hold."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.text import Truncator

from accounts.admin import AccountSearchMixin
from core.admin import BoundedListMixin, ReadOnlyMixin, admin_link, looks_like_id, usd_cell
from core.admin_guard import action_confirmed, permission_required
from core.exports import CsvExportMixin
from core.usd import usd_exact

from ..models import Hold, LedgerEntry
from ..services import hold_release

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


@admin.register(LedgerEntry)
class LedgerEntryAdmin(
    CsvExportMixin, ReadOnlyMixin, AccountSearchMixin, BoundedListMixin, admin.ModelAdmin[LedgerEntry]
):
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
    # Shown as the search box; what a term matches is `search_q`: index lookups only.
    search_fields = ("reference", "idempotency_key", "memo")
    search_exact_fields = ("reference", "idempotency_key")
    search_help_text = (
        "A reference or idempotency key, an account (#id, e-mail, @username, part of its name), "
        "or words of a credit's or adjustment's memo."
    )
    list_select_related = ("account", "created_by")
    autocomplete_fields = ("account", "created_by")
    # No date_hierarchy: listing which months exist reads the whole table. The created_at filter is ranges.
    list_per_page = 50
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
    export_columns = (
        ("id", "id"),
        ("created_at", "created_at"),
        ("account_id", "account_id"),
        ("account", "account__name"),
        ("kind", "kind"),
        ("amount_usd", "amount"),
        ("balance_after_usd", "balance_after"),
        ("reference", "reference"),
        ("idempotency_key", "idempotency_key"),
        ("memo", "memo"),
        ("created_by", "created_by__username"),
    )

    def search_q(self, term: str) -> Q:
        q = super().search_q(term)
        if not looks_like_id(term) and "@" not in term:  # not an id, an e-mail or a @username
            # Charges, nearly every row, have no memo: the partial index `ledger_not_charge` reads the rest.
            q |= Q(memo__icontains=term) & ~Q(kind=LedgerEntry.Kind.CHARGE)
        return q

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
class HoldAdmin(ReadOnlyMixin, AccountSearchMixin, BoundedListMixin, admin.ModelAdmin[Hold]):
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
    list_filter = ("status", ExpiredOpenFilter, "created_at")
    search_fields = ("reference",)
    search_exact_fields = ("reference",)
    list_select_related = ("account",)
    autocomplete_fields = ("account", "ledger_entry")
    # One hold per request: as big as the generations, so no date_hierarchy either.
    actions = ("release_selected",)

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: Hold) -> str:
        return admin_link(obj.account)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Hold) -> str:
        return usd_cell(obj.amount)

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.release_hold")

    @admin.action(description="Release selected open holds…", permissions=["release"])
    def release_selected(self, request: HttpRequest, queryset: QuerySet[Hold]) -> HttpResponse | None:
        permission_required(request, "billing.release_hold")
        holds = list(queryset.filter(status=Hold.Status.OPEN).select_related("account"))
        now = timezone.now()
        page, why = action_confirmed(
            self,
            request,
            holds,
            title=f"Release {len(holds)} hold(s)",
            consequence=(
                "Releasing a hold gives its amount back to the account's available balance without a charge. "
                "A hold that has not expired yet may belong to a request still running: "
                "that request will then not be charged."
            ),
            lines=[
                f"{hold.reference}: {usd_exact(hold.amount)} held for {hold.account}, expires "
                f"{hold.expires_at:%Y-%m-%d %H:%M:%S}" + (" (not expired yet)" if hold.expires_at > now else "")
                for hold in holds
            ],
        )
        if page is not None:
            return page
        reason = f"released by {request.user.get_username()} in admin: {why}"[:200]
        released = 0
        for hold in holds:
            if hold_release(reference=hold.reference, reason=reason):
                self.log_change(request, hold, f"Released {usd_exact(hold.amount)}: {reason}")
                released += 1
        self.message_user(request, f"Released {released} hold(s).", messages.SUCCESS)
        return None
