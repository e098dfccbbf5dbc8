"""Money coming in: Telegram Stars top-ups (with their refund action), redemption codes and redemptions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.db.models import Count, QuerySet

from core.admin import IdSearchMixin, ReadOnlyMixin, admin_link
from core.admin_guard import action_confirmed, permission_required
from core.exports import CsvExportMixin
from core.usd import usd_exact

from ..models import Redemption, RedemptionCode, TopUp
from ..services import BillingError
from ..topups import topup_refund

if TYPE_CHECKING:
    from django.forms import ModelForm
    from django.http import HttpRequest, HttpResponse


@admin.action(description="Refund selected Telegram Stars payments to the payer…", permissions=["refund"])
def refund_topups_action(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[TopUp]
) -> HttpResponse | None:
    """Refund each selected paid top-up through Telegram and debit it with a refund entry."""
    permission_required(request, "billing.refund_topup")
    topups = list(queryset.filter(status=TopUp.Status.PAID).select_related("account").order_by("pk"))
    page, reason = action_confirmed(
        modeladmin,
        request,
        topups,
        title=f"Refund {len(topups)} top-up(s)",
        consequence=(
            "Each payment goes back to its payer, and its amount is debited from the account with a refund entry. "
            "A top-up whose account has already spent it is refused."
        ),
        lines=[
            f"#{topup.pk}: {usd_exact(topup.amount_usd)} ({topup.amount_minor} {topup.currency}) for {topup.account}"
            for topup in topups
        ],
    )
    if page is not None:
        return page
    refunded = 0
    for topup in topups:
        try:
            topup_refund(topup=topup, created_by=request.user, reason=reason)
        except BillingError as error:
            modeladmin.message_user(request, f"Top-up #{topup.pk} not refunded: {error}", messages.ERROR)
            continue
        modeladmin.log_change(
            request, topup, f"Refunded {topup.amount_usd} USD ({topup.amount_minor} {topup.currency}): {reason}"
        )
        refunded += 1
    if refunded:
        modeladmin.message_user(request, f"Refunded {refunded} top-up(s).", messages.SUCCESS)
    return None


@admin.register(TopUp)
class TopUpAdmin(CsvExportMixin, ReadOnlyMixin, IdSearchMixin, admin.ModelAdmin[TopUp]):
    actions = (refund_topups_action,)
    export_columns = (
        ("id", "id"),
        ("created_at", "created_at"),
        ("paid_at", "paid_at"),
        ("account_id", "account_id"),
        ("account", "account__name"),
        ("method", "method"),
        ("status", "status"),
        ("amount_usd", "amount_usd"),
        ("currency", "currency"),
        ("amount_minor", "amount_minor"),
        ("telegram_payment_charge_id", "telegram_payment_charge_id"),
        ("provider_payment_charge_id", "provider_payment_charge_id"),
        ("ledger_entry_id", "ledger_entry_id"),
        ("refund_entry_id", "refund_entry_id"),
    )
    list_display = (
        "id",
        "account_link",
        "method",
        "status",
        "amount_display",
        "currency",
        "amount_minor",
        "created_at",
        "paid_at",
    )
    list_filter = ("status", "method", "created_at")
    search_fields = (
        "payload__exact",
        "telegram_payment_charge_id__exact",
        "provider_payment_charge_id__exact",
        "account__name",
    )
    search_id_fields = ("account_id",)
    list_select_related = ("account",)
    autocomplete_fields = ("account", "ledger_entry", "refund_entry")
    date_hierarchy = "created_at"

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: TopUp) -> str:
        return admin_link(obj.account)

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.refund_topup")

    @admin.display(description="amount", ordering="amount_usd")
    def amount_display(self, obj: TopUp) -> str:
        return usd_exact(obj.amount_usd)


class RedemptionInline(ReadOnlyMixin, admin.TabularInline[Redemption, RedemptionCode]):
    model = Redemption
    fields = ("account", "ledger_entry", "created_at")
    readonly_fields = fields
    extra = 0


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(admin.ModelAdmin[RedemptionCode]):
    list_display = (
        "code",
        "amount_display",
        "uses",
        "max_uses",
        "expires_at",
        "active",
        "memo",
        "created_by",
        "created_at",
    )
    list_filter = ("active", "expires_at")
    search_fields = ("code", "memo")
    list_select_related = ("created_by",)
    date_hierarchy = "created_at"
    fields = ("code", "amount", "max_uses", "expires_at", "active", "memo", "created_by", "created_at")
    readonly_fields = ("created_by", "created_at")
    inlines = (RedemptionInline,)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: RedemptionCode) -> str:
        return usd_exact(obj.amount)

    @admin.display(description="used", ordering="uses")
    def uses(self, obj: RedemptionCode) -> int:
        return obj.uses  # type: ignore[attr-defined]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RedemptionCode]:
        return super().get_queryset(request).annotate(uses=Count("redemptions"))

    def save_model(self, request: HttpRequest, obj: RedemptionCode, form: ModelForm, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyMixin, IdSearchMixin, admin.ModelAdmin[Redemption]):
    list_display = ("code", "account_link", "amount_display", "created_at")
    list_filter = ("created_at",)
    search_fields = ("code__code", "account__name")
    search_id_fields = ("account_id",)
    list_select_related = ("code", "account", "ledger_entry")
    autocomplete_fields = ("code", "account", "ledger_entry")
    date_hierarchy = "created_at"

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: Redemption) -> str:
        return admin_link(obj.account)

    @admin.display(description="credited")
    def amount_display(self, obj: Redemption) -> str:
        return usd_exact(obj.ledger_entry.amount)
