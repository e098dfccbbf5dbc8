"""Money coming in: Telegram Stars top-ups (with their refund action), redemption codes and redemptions."""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers

from core.admin import IdSearchMixin, ReadOnlyMixin, admin_link, usd_cell
from core.admin_guard import action_confirmed, permission_required
from core.exports import CsvExportMixin
from core.usd import decimal_text, usd_exact

from ..forms import RedemptionBatchForm, RedemptionCodeForm
from ..models import Redemption, RedemptionCode, TopUp
from ..redemptions import codes_create_batch
from ..services import BillingError
from ..topups import topup_refund

if TYPE_CHECKING:
    from django.forms import ModelForm
    from django.http import HttpRequest, HttpResponse
    from django.urls import URLPattern


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
        return usd_cell(obj.amount_usd)


class RedemptionInline(ReadOnlyMixin, admin.TabularInline[Redemption, RedemptionCode]):
    model = Redemption
    fields = ("account", "ledger_entry", "created_at")
    readonly_fields = fields
    extra = 0


# What a batch form created (code ids, by its hidden token), kept this long so a resent form finds it.
_BATCH_TTL_S = 24 * 3600
# The codes of a new batch are listed on its page once, and downloaded once, within this time.
_BATCH_SHOW_TTL_S = 600


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(admin.ModelAdmin[RedemptionCode]):
    form = RedemptionCodeForm
    change_list_template = "admin/billing/redemptioncode/change_list.html"
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
        return usd_cell(obj.amount)

    @admin.display(description="used", ordering="uses")
    def uses(self, obj: RedemptionCode) -> int:
        return obj.uses  # type: ignore[attr-defined]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RedemptionCode]:
        return super().get_queryset(request).annotate(uses=Count("redemptions"))

    def save_model(self, request: HttpRequest, obj: RedemptionCode, form: ModelForm, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    # A batch: N random codes, listed and downloadable as CSV once, right after they are made.

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("batch/", view(self.batch_view), name="billing_redemptioncode_batch"),
            path("batch/<str:token>/", view(self.batch_done_view), name="billing_redemptioncode_batch_done"),
            path("batch/<str:token>/csv/", view(self.batch_csv_view), name="billing_redemptioncode_batch_csv"),
            *super().get_urls(),
        ]

    def batch_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RedemptionBatchForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            data = form.cleaned_data
            token = data["batch_token"]
            # The first submission claims the token; a resent one is sent to what the first made.
            if cache.add(_batch_key(token), {"user": request.user.pk, "ids": []}, _BATCH_TTL_S):
                try:
                    codes = codes_create_batch(
                        count=data["count"],
                        amount=data["amount"],
                        max_uses=data["max_uses"],
                        expires_at=data["expires_at"],
                        memo=data["memo"],
                        prefix=data["prefix"],
                        created_by=request.user,
                    )
                except ValidationError as error:
                    cache.delete(_batch_key(token))
                    form.add_error(None, error)
                else:
                    ids = [code.pk for code in codes]
                    cache.set(_batch_key(token), {"user": request.user.pk, "ids": ids}, _BATCH_TTL_S)
                    cache.set(_batch_show_key(token), True, _BATCH_SHOW_TTL_S)
                    cache.set(_batch_csv_key(token), True, _BATCH_SHOW_TTL_S)
                    amount = usd_exact(data["amount"])
                    self.log_addition(request, codes[0], f"Created a batch of {len(codes)} codes of {amount}.")
                    return HttpResponseRedirect(reverse("admin:billing_redemptioncode_batch_done", args=[token]))
            else:
                return HttpResponseRedirect(reverse("admin:billing_redemptioncode_batch_done", args=[token]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Create a batch of redemption codes",
            "form": form,
        }
        return TemplateResponse(request, "admin/billing/redemptioncode/batch_form.html", context)

    def _batch(self, request: HttpRequest, token: str) -> list[int] | None:
        permission_required(request, "billing.add_redemptioncode")
        record = cache.get(_batch_key(token))
        if record is None or record["user"] != request.user.pk:
            return None
        return record["ids"]

    def batch_done_view(self, request: HttpRequest, token: str) -> HttpResponse:
        ids = self._batch(request, token)
        if ids is None:
            self.message_user(request, "There is no new batch of codes to show.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:billing_redemptioncode_changelist"))
        codes = RedemptionCode.objects.filter(pk__in=ids).order_by("pk")
        # Whoever deletes the marker lists the codes: a reload shows the batch's figures, not its codes.
        show = cache.delete(_batch_show_key(token))
        first = codes.first()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Redemption codes created",
            "count": len(ids),
            "first": first,
            "amount": usd_exact(first.amount) if first else "",
            "codes": list(codes) if show else [],
            "csv_available": cache.get(_batch_csv_key(token)) is not None,
            "csv_url": reverse("admin:billing_redemptioncode_batch_csv", args=[token]),
        }
        response = TemplateResponse(request, "admin/billing/redemptioncode/batch_done.html", context)
        add_never_cache_headers(response)
        return response

    def batch_csv_view(self, request: HttpRequest, token: str) -> HttpResponse:
        ids = self._batch(request, token)
        if ids is None or not cache.delete(_batch_csv_key(token)):
            self.message_user(request, "This batch's CSV was already downloaded.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:billing_redemptioncode_changelist"))
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="redemption-codes-{token[:8]}.csv"'
        add_never_cache_headers(response)
        writer = csv.writer(response)
        writer.writerow(["code", "amount_usd", "max_uses", "expires_at", "memo"])
        for code in RedemptionCode.objects.filter(pk__in=ids).order_by("pk"):
            expires = code.expires_at.isoformat() if code.expires_at else ""
            writer.writerow([code.code, decimal_text(code.amount), code.max_uses, expires, code.memo])
        return response


def _batch_key(token: str) -> str:
    return f"admin:redemption-batch:{token}"


def _batch_show_key(token: str) -> str:
    return f"admin:redemption-batch-show:{token}"


def _batch_csv_key(token: str) -> str:
    return f"admin:redemption-batch-csv:{token}"


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
        return usd_cell(obj.ledger_entry.amount)
