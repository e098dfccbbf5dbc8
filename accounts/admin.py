"""Admin for API keys; the helpers every ML Router admin module shares are in core/admin.py.

The Account admin lives in billing/admin/accounts.py: its page is where operators move money, and nothing in
`accounts` may import `billing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from core.admin import IdSearchMixin, admin_link
from core.admin_guard import action_confirmed, permission_required
from core.usd import usd_exact

from .models import Account, ApiKey
from .principals import principal_forget
from .services import api_key_create, api_key_revoke

if TYPE_CHECKING:
    from django.forms import ModelForm
    from django.http import HttpRequest, HttpResponse


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "revoked"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("no", "active"), ("yes", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() in ("no", "yes"):
            return queryset.filter(revoked_at__isnull=self.value() == "no")
        return queryset


class ApiKeyInline(admin.TabularInline[ApiKey, Account]):
    """The account's keys, read-only: keys are issued and revoked from the API key admin."""

    model = ApiKey
    fields = ("prefix", "name", "rpm_limit", "spend_limit", "spend_period", "last_used_at", "revoked_at", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(IdSearchMixin, admin.ModelAdmin[ApiKey]):
    list_display = (
        "prefix",
        "name",
        "account_link",
        "rpm_limit",
        "spend_limit_display",
        "spend_period",
        "last_used_at",
        "revoked_at",
        "created_at",
    )
    list_filter = (RevokedFilter, "spend_period")
    search_fields = ("prefix", "name", "account__name")
    search_id_fields = ("account_id",)
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    date_hierarchy = "created_at"
    actions = ("revoke_selected",)

    add_fields = ("account", "name", "rpm_limit", "spend_limit", "spend_period")
    change_fields = (
        "account",
        "prefix",
        "name",
        "rpm_limit",
        "spend_limit",
        "spend_period",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    change_readonly_fields = ("account", "prefix", "created_at", "last_used_at", "revoked_at")

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: ApiKey) -> str:
        return admin_link(obj.account)

    @admin.display(description="spend limit", ordering="spend_limit")
    def spend_limit_display(self, obj: ApiKey) -> str:
        return "no limit" if obj.spend_limit is None else usd_exact(obj.spend_limit)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        return self.add_fields if obj is None else self.change_fields

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        return () if obj is None else self.change_readonly_fields

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"rpm_limit": settings.DEFAULT_KEY_RPM, **super().get_changeform_initial_data(request)}

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # A revoked key is history: nothing about it is worth editing.
        return super().has_change_permission(request, obj) and not (obj and obj.is_revoked)

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # Generations point at keys; a key is revoked, never deleted.
        return False

    def save_model(self, request: HttpRequest, obj: ApiKey, form: ModelForm, change: bool) -> None:
        if change:
            # Only the edited columns: a full save would write back a stale revoked_at or last_used_at.
            if form.changed_data:
                obj.save(update_fields=form.changed_data)
                transaction.on_commit(lambda: principal_forget(obj.key_hash))
            return
        issued, secret = api_key_create(
            account=obj.account,
            name=obj.name,
            rpm_limit=obj.rpm_limit,
            spend_limit=obj.spend_limit,
            spend_period=obj.spend_period,
        )
        obj.pk = issued.pk
        obj.refresh_from_db()
        obj._state.adding = False
        # Lives only on this object, for response_add below: never in the session, messages or a log.
        obj._issued_secret = secret  # type: ignore[attr-defined]

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        secret = getattr(obj, "_issued_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API key created",
            "api_key": obj,
            "secret": secret,
        }
        response = TemplateResponse(request, "admin/accounts/apikey/issued.html", context)
        add_never_cache_headers(response)
        return response

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.revoke_apikey")

    @admin.action(description="Revoke selected keys…", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        permission_required(request, "accounts.revoke_apikey")
        keys = list(queryset.filter(revoked_at__isnull=True).select_related("account"))
        page, reason = action_confirmed(
            self,
            request,
            keys,
            title=f"Revoke {len(keys)} key(s)",
            consequence="A revoked key stops working within seconds, for good: it cannot be reactivated.",
            lines=[f"{api_key.prefix}… “{api_key.name}” of {api_key.account}" for api_key in keys],
            needs_reason=False,
        )
        if page is not None:
            return page
        for api_key in keys:
            api_key_revoke(api_key=api_key)
            self.log_change(request, api_key, f"Revoked the key: {reason}" if reason else "Revoked the key.")
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)
        return None
