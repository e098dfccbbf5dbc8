"""The Account admin: where operators find an account, top it up, adjust it and suspend it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import F, QuerySet
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse

from accounts.admin import ApiKeyInline
from accounts.models import Account
from accounts.services import account_set_status
from core.admin import IdSearchMixin, usd_cell
from core.admin_guard import action_confirmed, permission_required
from core.exports import CsvExportMixin
from core.usd import usd_exact

from ..forms import AdjustForm, OperatorMoneyForm, TopUpForm
from ..models import LedgerEntry
from ..services import BillingError, IdempotencyConflict, InsufficientFunds, ledger_adjust
from ..topups import topup_operator

if TYPE_CHECKING:
    from django.forms import ModelForm
    from django.http import HttpRequest, HttpResponse
    from django.urls import URLPattern

RECENT_LEDGER_ROWS = 20

# Sections that apps above billing add to the top of an account's page (the analytics' overview).
AccountPanel = Callable[["HttpRequest", Account], str]
_panels: list[AccountPanel] = []


def register_account_panel(panel: AccountPanel) -> None:
    """Show `panel(request, account)`, safe HTML, above the account's form."""
    if panel not in _panels:
        _panels.append(panel)


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
class AccountAdmin(CsvExportMixin, IdSearchMixin, admin.ModelAdmin[Account]):
    list_display = (
        "id",
        "name",
        "status",
        "balance_cell",
        "held_cell",
        "available_cell",
        "threshold_display",
        "contacts",
    )
    list_display_links = ("id", "name")
    # Django renders each row's cells, links and checkbox one by one: 100 rows took most of a page's time.
    list_per_page = 50
    list_filter = ("status", LowBalanceFilter, "language")
    search_fields = ("name", "email", "telegram_username")
    search_id_fields = ("id", "telegram_chat_id")
    date_hierarchy = "created_at"
    inlines = (ApiKeyInline,)
    actions = ("suspend_selected", "reactivate_selected", "topup_selected", "adjust_selected")
    readonly_fields = ("balance_display", "held_display", "available_display", "created_at", "recent_ledger")
    export_columns = (
        ("id", "id"),
        ("name", "name"),
        ("status", "status"),
        ("email", "email"),
        ("telegram_username", "telegram_username"),
        ("telegram_chat_id", "telegram_chat_id"),
        ("language", "language"),
        ("balance_usd", "balance"),
        ("held_usd", "held"),
        ("low_balance_threshold_usd", "low_balance_threshold"),
        ("created_at", "created_at"),
    )
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
        return usd_exact(obj.balance)

    @admin.display(description="held", ordering="held")
    def held_display(self, obj: Account) -> str:
        return usd_exact(obj.held)

    @admin.display(description="available", ordering=F("balance") - F("held"))
    def available_display(self, obj: Account) -> str:
        return usd_exact(obj.available)

    @admin.display(description="balance", ordering="balance")
    def balance_cell(self, obj: Account) -> str:
        return usd_cell(obj.balance)

    @admin.display(description="held", ordering="held")
    def held_cell(self, obj: Account) -> str:
        return usd_cell(obj.held)

    @admin.display(description="available", ordering=F("balance") - F("held"))
    def available_cell(self, obj: Account) -> str:
        return usd_cell(obj.available)

    @admin.display(description="alert below", ordering="low_balance_threshold")
    def threshold_display(self, obj: Account) -> str:
        return usd_cell(obj.low_balance_threshold)

    @admin.display(description="contacts", ordering="email")
    def contacts(self, obj: Account) -> str:
        telegram = f"@{obj.telegram_username}" if obj.telegram_username else ""
        chat = f"chat {obj.telegram_chat_id}" if obj.telegram_chat_id else ""
        return " · ".join(part for part in (obj.email, telegram, chat) if part) or "—"

    @admin.display(description="last entries")
    def recent_ledger(self, obj: Account) -> str:
        entries = LedgerEntry.objects.filter(account=obj).select_related("created_by")[:RECENT_LEDGER_ROWS]
        rows = [
            {"entry": e, "amount": usd_exact(e.amount), "balance_after": usd_exact(e.balance_after)} for e in entries
        ]
        return render_to_string(
            "admin/accounts/account/recent_ledger.html",
            {"rows": rows, "ledger_url": _ledger_url(obj), "holds_url": _holds_url(obj), "limit": RECENT_LEDGER_ROWS},
        )

    def get_fieldsets(self, request: HttpRequest, obj: Account | None = None) -> Any:
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Account | None = None) -> Any:
        # Suspending asks for a reason and a confirmation: it is the list action (and its button), not a field.
        fields = super().get_readonly_fields(request, obj)
        return fields if obj is None else (*fields, "status")

    def get_inlines(self, request: HttpRequest, obj: Account | None) -> Any:
        return () if obj is None else self.inlines

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        # Operators paste Telegram usernames as "@name".
        return super().get_search_results(request, queryset, search_term.strip().removeprefix("@"))

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        # The ledger points at accounts; an account is suspended, never deleted.
        return False

    def has_topup_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.topup_account")

    def has_adjust_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.adjust_balance")

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.suspend_account")

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
        account = self.get_object(request, unquote(object_id)) if _panels else None
        extra_context = {
            **(extra_context or {}),
            "can_topup": self.has_topup_permission(request),
            "can_adjust": self.has_adjust_permission(request),
            "can_suspend": self.has_suspend_permission(request),
            "ledger_url": _ledger_url(unquote(object_id)),
            "account_panels": [panel(request, account) for panel in _panels] if account is not None else [],
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
        return self._money_view(
            request, object_id, form_class=TopUpForm, label="Top-up", move=topup_operator, perm="billing.topup_account"
        )

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._money_view(
            request,
            object_id,
            form_class=AdjustForm,
            label="Adjustment",
            move=ledger_adjust,
            perm="billing.adjust_balance",
        )

    def _money_view(
        self,
        request: HttpRequest,
        object_id: str,
        *,
        form_class: type[OperatorMoneyForm],
        label: str,
        move: Callable[..., LedgerEntry],
        perm: str,
    ) -> HttpResponse:
        permission_required(request, "accounts.view_account", perm)
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
                available = usd_exact(exc.available)
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
                "balance": usd_exact(account.balance),
                "held": usd_exact(account.held),
                "available": usd_exact(account.available),
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
        amount = usd_exact(entry.amount)
        self.log_change(request, account, f"{label} of {amount} (ledger entry #{entry.pk}): {entry.memo}")
        self.message_user(
            request,
            f"{label} of {amount} recorded for {account}. Balance now {usd_exact(entry.balance_after)}.",
            messages.SUCCESS,
        )

    # List actions.

    @admin.action(description="Suspend selected accounts…", permissions=["suspend"])
    def suspend_selected(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        return self._set_status(request, queryset, Account.Status.SUSPENDED, "Suspend", "Suspended")

    @admin.action(description="Reactivate selected accounts…", permissions=["suspend"])
    def reactivate_selected(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        return self._set_status(request, queryset, Account.Status.ACTIVE, "Reactivate", "Reactivated")

    def _set_status(
        self, request: HttpRequest, queryset: QuerySet[Account], status: str, verb: str, done: str
    ) -> HttpResponse | None:
        permission_required(request, "accounts.suspend_account")
        accounts = list(queryset.exclude(status=status))
        consequence = (
            "Their keys stop working within seconds; requests in flight finish and are charged."
            if status == Account.Status.SUSPENDED
            else "Their keys work again within seconds."
        )
        page, reason = action_confirmed(
            self,
            request,
            accounts,
            title=f"{verb} {len(accounts)} account(s)",
            consequence=consequence,
            lines=[f"{account}, available {usd_exact(account.available)}" for account in accounts],
        )
        if page is not None:
            return page
        for account in accounts:
            account_set_status(account=account, status=status)
            self.log_change(request, account, f"{done} the account: {reason}")
        self.message_user(request, f"{done} {len(accounts)} account(s).", messages.SUCCESS)
        return None

    @admin.action(description="Top up the selected account…", permissions=["topup"])
    def topup_selected(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        permission_required(request, "billing.topup_account")
        return self._to_money_view(request, queryset, "topup")

    @admin.action(description="Adjust the balance of the selected account…", permissions=["adjust"])
    def adjust_selected(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        permission_required(request, "billing.adjust_balance")
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
