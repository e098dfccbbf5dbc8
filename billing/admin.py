"""Admin for money: accounts (where operators top up and adjust), prices, the ledger, holds and the rest.

Every change of a balance here goes through billing.services and is written to the admin history.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, QuerySet
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.text import Truncator

from accounts.admin import (
    ApiKeyInline,
    BoundedCountPaginator,
    IdSearchMixin,
    ReadOnlyMixin,
    admin_link,
    usd_display,
)
from accounts.models import Account
from accounts.services import account_set_status

from .admin_actions import repair_findings, retry_failed_alerts, run_reconciliation_now
from .forms import AdjustForm, OperatorMoneyForm, PriceForm, TopUpForm
from .models import (
    Hold,
    LedgerEntry,
    LowBalanceAlert,
    Price,
    ReconciliationFinding,
    ReconciliationRun,
    Redemption,
    RedemptionCode,
    TopUp,
)
from .services import (
    BillingError,
    IdempotencyConflict,
    InsufficientFunds,
    hold_release,
    ledger_adjust,
    ledger_credit,
    price_set,
)
from .topups import topup_refund

if TYPE_CHECKING:
    from django.forms import ModelForm
    from django.http import HttpRequest, HttpResponse
    from django.urls import URLPattern

RECENT_LEDGER_ROWS = 20


class LowBalanceFilter(admin.SimpleListFilter):
    title = "balance"
    parameter_name = "low"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "available below threshold")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Account]) -> QuerySet[Account]:
        if self.value() == "yes":
            return queryset.filter(balance__lt=F("held") + F("low_balance_threshold"))
        return queryset


@admin.register(Account)
class AccountAdmin(IdSearchMixin, admin.ModelAdmin[Account]):
    list_display = (
        "id",
        "name",
        "status",
        "balance_display",
        "held_display",
        "available_display",
        "threshold_display",
        "contacts",
    )
    list_display_links = ("id", "name")
    list_filter = ("status", LowBalanceFilter, "language")
    search_fields = ("name", "email", "telegram_username")
    search_id_fields = ("id", "telegram_chat_id")
    date_hierarchy = "created_at"
    inlines = (ApiKeyInline,)
    actions = ("suspend_selected", "reactivate_selected", "topup_selected", "adjust_selected")
    readonly_fields = ("balance_display", "held_display", "available_display", "created_at", "recent_ledger")
    add_fieldsets = (
        (None, {"fields": ("name", "email", "telegram_username", "telegram_chat_id", "language")}),
        ("Alerts", {"fields": ("low_balance_threshold",)}),
    )
    fieldsets = (
        (None, {"fields": ("name", "status", "email", "telegram_username", "telegram_chat_id", "language")}),
        ("Money", {"fields": ("balance_display", "held_display", "available_display", "low_balance_threshold")}),
        ("Recent ledger", {"fields": ("recent_ledger",)}),
        ("Record", {"fields": ("created_at",)}),
    )

    @admin.display(description="balance", ordering="balance")
    def balance_display(self, obj: Account) -> str:
        return usd_display(obj.balance)

    @admin.display(description="held", ordering="held")
    def held_display(self, obj: Account) -> str:
        return usd_display(obj.held)

    @admin.display(description="available", ordering=F("balance") - F("held"))
    def available_display(self, obj: Account) -> str:
        return usd_display(obj.available)

    @admin.display(description="alert below", ordering="low_balance_threshold")
    def threshold_display(self, obj: Account) -> str:
        return usd_display(obj.low_balance_threshold)

    @admin.display(description="contacts", ordering="email")
    def contacts(self, obj: Account) -> str:
        telegram = f"@{obj.telegram_username}" if obj.telegram_username else ""
        chat = f"chat {obj.telegram_chat_id}" if obj.telegram_chat_id else ""
        return " · ".join(part for part in (obj.email, telegram, chat) if part) or "—"

    @admin.display(description="last entries")
    def recent_ledger(self, obj: Account) -> str:
        entries = LedgerEntry.objects.filter(account=obj).select_related("created_by")[:RECENT_LEDGER_ROWS]
        rows = [
            {"entry": e, "amount": usd_display(e.amount), "balance_after": usd_display(e.balance_after)}
            for e in entries
        ]
        return render_to_string(
            "admin/accounts/account/recent_ledger.html",
            {"rows": rows, "ledger_url": _ledger_url(obj), "holds_url": _holds_url(obj), "limit": RECENT_LEDGER_ROWS},
        )

    def get_fieldsets(self, request: HttpRequest, obj: Account | None = None) -> Any:
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_inlines(self, request: HttpRequest, obj: Account | None) -> Any:
        return () if obj is None else self.inlines

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        # Operators paste Telegram usernames as "@name".
        return super().get_search_results(request, queryset, search_term.strip().removeprefix("@"))

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        # The ledger points at accounts; an account is suspended, never deleted.
        return False

    def has_move_money_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.add_ledgerentry")

    def save_model(self, request: HttpRequest, obj: Account, form: ModelForm, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Only the edited columns: a full save would write back a balance read before a concurrent charge.
        fields = [name for name in form.changed_data if name != "status"]
        if fields:
            obj.save(update_fields=fields)
        if "status" in form.changed_data:
            account_set_status(account=obj, status=obj.status)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_move_money": self.has_move_money_permission(request),
            "ledger_url": _ledger_url(unquote(object_id)),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # Top up and adjust: one form each, reached from the change page or from the list action.

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/topup/",
                self.admin_site.admin_view(self.topup_view),
                name="{}_{}_topup".format(*info),
            ),
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="{}_{}_adjust".format(*info),
            ),
            *super().get_urls(),
        ]

    def topup_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        credit = partial(ledger_credit, kind=LedgerEntry.Kind.TOPUP)
        return self._money_view(request, object_id, form_class=TopUpForm, label="Top-up", move=credit)

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._money_view(request, object_id, form_class=AdjustForm, label="Adjustment", move=ledger_adjust)

    def _money_view(
        self,
        request: HttpRequest,
        object_id: str,
        *,
        form_class: type[OperatorMoneyForm],
        label: str,
        move: Callable[..., LedgerEntry],
    ) -> HttpResponse:
        if not self.has_move_money_permission(request):
            raise PermissionDenied
        account = self.get_object(request, unquote(object_id))
        if account is None or not self.has_view_permission(request, account):
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        form = form_class(request.POST if request.method == "POST" else None)
        if form.is_valid():
            data = form.cleaned_data
            try:
                entry = move(
                    account=account,
                    amount=data["amount"],
                    memo=data["memo"],
                    idempotency_key=data["idempotency_key"],
                    created_by=request.user,
                )
            except InsufficientFunds as exc:
                available = usd_display(exc.available)
                form.add_error("amount", f"The available balance is {available}; it cannot go below $0.")
            except IdempotencyConflict:
                form.add_error(None, "This form was already submitted with other values; open it again.")
            except (BillingError, ValueError) as exc:
                form.add_error(None, str(exc))
            else:
                self._report_money_moved(request, account, entry, label)
                return HttpResponseRedirect(reverse("admin:accounts_account_change", args=[account.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{label} for {account}",
            "submit_label": f"Record {label.lower()}",
            "account": account,
            "form": form,
            "money": {
                "balance": usd_display(account.balance),
                "held": usd_display(account.held),
                "available": usd_display(account.available),
            },
        }
        return TemplateResponse(request, "admin/accounts/account/money_form.html", context)

    def _report_money_moved(self, request: HttpRequest, account: Account, entry: LedgerEntry, label: str) -> None:
        if entry.replayed:
            self.message_user(
                request,
                f"This form was already submitted: ledger entry #{entry.pk} stands and nothing was moved again.",
                messages.WARNING,
            )
            return
        amount = usd_display(entry.amount)
        self.log_change(request, account, f"{label} of {amount} (ledger entry #{entry.pk}): {entry.memo}")
        self.message_user(
            request,
            f"{label} of {amount} recorded for {account}. Balance now {usd_display(entry.balance_after)}.",
            messages.SUCCESS,
        )

    # List actions.

    @admin.action(description="Suspend selected accounts", permissions=["change"])
    def suspend_selected(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._set_status(request, queryset, Account.Status.SUSPENDED, "Suspended")

    @admin.action(description="Reactivate selected accounts", permissions=["change"])
    def reactivate_selected(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._set_status(request, queryset, Account.Status.ACTIVE, "Reactivated")

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Account], status: str, verb: str) -> None:
        changed = 0
        for account in queryset.exclude(status=status):
            account_set_status(account=account, status=status)
            self.log_change(request, account, f"{verb} the account.")
            changed += 1
        self.message_user(request, f"{verb} {changed} account(s).", messages.SUCCESS)

    @admin.action(description="Top up the selected account…", permissions=["move_money"])
    def topup_selected(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        return self._to_money_view(request, queryset, "topup")

    @admin.action(description="Adjust the balance of the selected account…", permissions=["move_money"])
    def adjust_selected(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        return self._to_money_view(request, queryset, "adjust")

    def _to_money_view(self, request: HttpRequest, queryset: QuerySet[Account], view: str) -> HttpResponse | None:
        accounts = list(queryset[:2])
        if len(accounts) != 1:
            message = "Select exactly one account: money is moved one account at a time."
            self.message_user(request, message, messages.WARNING)
            return None
        return HttpResponseRedirect(reverse(f"admin:accounts_account_{view}", args=[accounts[0].pk]))


def _ledger_url(account: Account | int | str) -> str:
    account_id = account.pk if isinstance(account, Account) else account
    return f"{reverse('admin:billing_ledgerentry_changelist')}?account__id__exact={account_id}"


def _holds_url(account: Account) -> str:
    return f"{reverse('admin:billing_hold_changelist')}?account__id__exact={account.pk}&status__exact=open"


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin[Price]):
    """Price versions: added, never edited. A version not yet in force may be withdrawn (deleted)."""

    form = PriceForm
    list_display = (
        "model",
        "prompt_display",
        "completion_display",
        "cached_prompt_display",
        "request_display",
        "effective_from",
        "created_by",
        "created_at",
    )
    list_filter = ("model", "effective_from")
    search_fields = ("model__public_id", "model__name")
    list_select_related = ("model", "created_by")
    autocomplete_fields = ("model",)
    date_hierarchy = "effective_from"

    @admin.display(description="prompt / 1M", ordering="prompt")
    def prompt_display(self, obj: Price) -> str:
        return usd_display(obj.prompt)

    @admin.display(description="completion / 1M", ordering="completion")
    def completion_display(self, obj: Price) -> str:
        return usd_display(obj.completion)

    @admin.display(description="cached prompt / 1M", ordering="cached_prompt")
    def cached_prompt_display(self, obj: Price) -> str:
        return "as prompt" if obj.cached_prompt is None else usd_display(obj.cached_prompt)

    @admin.display(description="per request", ordering="request")
    def request_display(self, obj: Price) -> str:
        return usd_display(obj.request)

    def get_readonly_fields(self, request: HttpRequest, obj: Price | None = None) -> tuple[str, ...]:
        return () if obj is None else ("created_by", "created_at")

    def get_fields(self, request: HttpRequest, obj: Price | None = None) -> tuple[str, ...]:
        fields = ("model", "prompt", "completion", "cached_prompt", "request", "effective_from")
        return fields if obj is None else (*fields, "created_by", "created_at")

    def has_change_permission(self, request: HttpRequest, obj: Price | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Price | None = None) -> bool:
        # Only a scheduled version, before it takes effect; history stays.
        return obj is not None and obj.effective_from > timezone.now() and super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Price, form: ModelForm, change: bool) -> None:
        price = price_set(
            model_id=obj.model_id,
            prompt=obj.prompt,
            completion=obj.completion,
            cached_prompt=obj.cached_prompt,
            request=obj.request,
            effective_from=obj.effective_from,
            created_by=request.user,
        )
        obj.pk = price.pk
        obj.refresh_from_db()
        obj._state.adding = False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyMixin, IdSearchMixin, admin.ModelAdmin[LedgerEntry]):
    """The append-only ledger: nobody adds, edits or deletes an entry here, superusers included."""

    list_display = (
        "id",
        "created_at",
        "account_link",
        "kind",
        "amount_display",
        "balance_after_display",
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
        return usd_display(obj.amount)

    @admin.display(description="balance after")
    def balance_after_display(self, obj: LedgerEntry) -> str:
        return usd_display(obj.balance_after)

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
        return usd_display(obj.amount)

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
                "holds": [(hold, usd_display(hold.amount)) for hold in holds],
                "now": timezone.now(),
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/billing/hold/release_confirmation.html", context)
        reason = f"released by {request.user.get_username()} in admin"
        released = 0
        for hold in holds:
            if hold_release(reference=hold.reference, reason=reason):
                self.log_change(request, hold, f"Released {usd_display(hold.amount)}: {reason}.")
                released += 1
        self.message_user(request, f"Released {released} hold(s).", messages.SUCCESS)
        return None


@admin.action(description="Refund selected Telegram Stars payments to the payer")
def refund_topups_action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[TopUp]) -> None:
    """Refund each selected paid top-up through Telegram and debit it with a refund entry."""
    # Checked here rather than through `permissions`: the TopUp admin is read-only, so it grants no "change".
    if not request.user.has_perm("billing.change_topup"):
        modeladmin.message_user(request, "Refunding needs the billing.change_topup permission.", messages.ERROR)
        return
    refunded = 0
    for topup in queryset.select_related("account").order_by("pk"):
        try:
            topup_refund(topup=topup, created_by=request.user)
        except BillingError as error:
            modeladmin.message_user(request, f"Top-up #{topup.pk} not refunded: {error}", messages.ERROR)
            continue
        modeladmin.log_change(
            request, topup, f"Refunded {topup.amount_usd} USD ({topup.amount_minor} {topup.currency})"
        )
        refunded += 1
    if refunded:
        modeladmin.message_user(request, f"Refunded {refunded} top-up(s).", messages.SUCCESS)


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyMixin, IdSearchMixin, admin.ModelAdmin[TopUp]):
    actions = (refund_topups_action,)
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

    @admin.display(description="amount", ordering="amount_usd")
    def amount_display(self, obj: TopUp) -> str:
        return usd_display(obj.amount_usd)


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
        return usd_display(obj.amount)

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
        return usd_display(obj.ledger_entry.amount)


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

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: LowBalanceAlert) -> str:
        return admin_link(obj.account)

    @admin.display(description="available then", ordering="balance")
    def balance_display(self, obj: LowBalanceAlert) -> str:
        return usd_display(obj.balance)

    @admin.display(description="threshold", ordering="threshold")
    def threshold_display(self, obj: LowBalanceAlert) -> str:
        return usd_display(obj.threshold)


class FindingInline(ReadOnlyMixin, admin.TabularInline[ReconciliationFinding, ReconciliationRun]):
    model = ReconciliationFinding
    fields = ("kind", "account", "reference", "detail", "amount", "fix_entry", "created_at")
    readonly_fields = fields
    extra = 0


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyMixin, admin.ModelAdmin[ReconciliationRun]):
    actions = (run_reconciliation_now,)
    change_list_template = "admin/billing/reconciliationrun/change_list.html"
    list_display = ("id", "trigger", "status", "findings_count", "started_at", "finished_at", "error_short")
    list_filter = ("status", "trigger", "started_at")
    search_fields = ("trigger", "error")
    date_hierarchy = "started_at"
    inlines = (FindingInline,)

    @admin.display(description="findings", ordering="findings_count")
    def findings_count(self, obj: ReconciliationRun) -> int:
        return obj.findings_count  # type: ignore[attr-defined]

    @admin.display(description="error")
    def error_short(self, obj: ReconciliationRun) -> str:
        return Truncator(obj.error).chars(80)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReconciliationRun]:
        return super().get_queryset(request).annotate(findings_count=Count("findings"))

    def get_urls(self) -> list[URLPattern]:
        run_now = self.admin_site.admin_view(self.run_now_view)
        return [path("run-now/", run_now, name="billing_reconciliationrun_run_now"), *super().get_urls()]

    def run_now_view(self, request: HttpRequest) -> HttpResponse:
        """The changelist's "Run reconciliation now" button (works with no run listed yet)."""
        if request.method != "POST" or not self.has_view_permission(request):
            raise PermissionDenied
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

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: ReconciliationFinding) -> str:
        return admin_link(obj.account)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: ReconciliationFinding) -> str:
        return usd_display(obj.amount)
