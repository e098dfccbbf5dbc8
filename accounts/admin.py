"""Admin for API keys; the helpers every ML Router admin module shares are in core/admin.py.

The Account admin lives in billing/admin/accounts.py: its page is where operators move money, and nothing in
`accounts` may import `billing`.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from core.admin import ExactSearchMixin, IdSearchMixin, admin_link, search_number, usd_cell
from core.admin_guard import action_confirmed, permission_required

from .keys import KEY_PREFIX, VISIBLE_LENGTH
from .models import Account, ApiKey
from .principals import principal_forget
from .services import api_key_create, api_key_revoke

if TYPE_CHECKING:
    from django.forms import ModelForm
    from django.http import HttpRequest, HttpResponse
    from django.urls import URLPattern


# A search that names more accounts than this (a common word of their names) shows the newest ones' rows.
SEARCH_ACCOUNTS_MAX = 200


def accounts_for_search(term: str) -> list[int]:
    """The ids of the accounts a search term names: `#12` or `12`, an e-mail, `@username`, or part of a name.

    Accounts are few next to their generations and ledger entries, so the substring is looked for here,
    and the big tables are then read through their account index.
    """
    term = term.strip()
    number = search_number(term)
    if number is not None:
        found = Account.objects.filter(Q(pk=number) | Q(telegram_chat_id=number))
    elif term.startswith("@"):
        found = Account.objects.filter(telegram_username__iexact=term[1:])
    elif "@" in term:
        found = Account.objects.filter(email__iexact=term)
    else:
        found = Account.objects.filter(name__icontains=term)
    return list(found.order_by("-pk").values_list("pk", flat=True)[:SEARCH_ACCOUNTS_MAX])


class AccountSearchMixin(ExactSearchMixin):
    """Search on a big table with an account (and maybe a key) column: exact ids, plus the rows of the
    accounts a term names (`accounts_for_search`) or of the key whose prefix it is."""

    search_account_field = "account"
    search_key_field: str | None = None
    search_help_text = "An exact id, an account (#id, e-mail, @username, part of its name) or a key prefix."

    def search_q(self, term: str) -> Q:
        q = super().search_q(term)
        account_ids = accounts_for_search(term)
        if account_ids:
            q |= Q(**{f"{self.search_account_field}_id__in": account_ids})
        if self.search_key_field and term.startswith(KEY_PREFIX):
            keys = ApiKey.objects.filter(prefix=term[:VISIBLE_LENGTH]).values_list("pk", flat=True)
            q |= Q(**{f"{self.search_key_field}_id__in": list(keys[:SEARCH_ACCOUNTS_MAX])})
        return q


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


# The secrets of keys just issued wait here for the one page that shows them (`issued_view`), for at most
# this long; reading them deletes them. Never in the database, the session, a message or a log.
_SECRETS_TTL_S = 300
# What a submitted add form issued (key ids, by its hidden token): a resent form shows these again.
_ISSUED_TTL_S = 24 * 3600
MAX_KEYS_AT_ONCE = 50
_TOKEN = re.compile(r"[0-9a-f]{32}")


def _model_choices() -> list[tuple[str, str]]:
    # The catalog lives in `completions`, which `accounts` does not import.
    catalog = apps.get_model("completions", "Model")
    return [
        (public_id, public_id)
        for public_id in catalog.objects.order_by("public_id").values_list("public_id", flat=True)
    ]


class ApiKeyForm(forms.ModelForm):
    """The key form; on the add page also how many keys to issue and the token that makes a resend harmless."""

    allowed_models = forms.MultipleChoiceField(
        required=False,
        choices=_model_choices,
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="The models this key may use; none selected: every model.",
    )
    count = forms.IntegerField(
        label="Number of keys",
        min_value=1,
        max_value=MAX_KEYS_AT_ONCE,
        initial=1,
        help_text="Issue this many keys with the same settings at once.",
    )
    issue_token = forms.CharField(widget=forms.HiddenInput)

    class Meta:
        model = ApiKey
        fields = ("account", "name", "rpm_limit", "spend_limit", "spend_period", "expires_at", "allowed_models")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            for name in ("count", "issue_token"):
                self.fields.pop(name, None)
        elif not self.is_bound:
            self.initial.setdefault("issue_token", uuid.uuid4().hex)
        if "allowed_models" in self.fields:
            known = {value for value, _ in self.fields["allowed_models"].choices}
            # A model since removed from the catalog stays listed, so saving the form does not drop it silently.
            extra = [(m, f"{m} (not in the catalog)") for m in self.instance.allowed_models or () if m not in known]
            self.fields["allowed_models"].choices = [*self.fields["allowed_models"].choices, *extra]

    def clean_issue_token(self) -> str:
        token = self.cleaned_data["issue_token"]
        if not _TOKEN.fullmatch(token):
            raise forms.ValidationError("This form is not valid any more; open it again.")
        return token

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        # Only a new key: an operator may end an existing one by moving its expiry to now or the past.
        if expires_at is not None and self.instance.pk is None and expires_at <= timezone.now():
            raise forms.ValidationError("Choose a time in the future.")
        return expires_at


@admin.register(ApiKey)
class ApiKeyAdmin(IdSearchMixin, admin.ModelAdmin[ApiKey]):
    form = ApiKeyForm
    list_display = (
        "prefix",
        "name",
        "account_link",
        "rpm_limit",
        "spend_limit_display",
        "spend_period",
        "expires_at",
        "models_display",
        "last_used_at",
        "revoked_at",
        "created_at",
    )
    list_filter = (RevokedFilter, "spend_period")
    list_per_page = 50
    search_fields = ("prefix", "name", "account__name")
    search_id_fields = ("account_id",)
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    date_hierarchy = "created_at"
    actions = ("revoke_selected",)

    add_fields = (
        "account",
        "count",
        "name",
        "rpm_limit",
        "spend_limit",
        "spend_period",
        "expires_at",
        "allowed_models",
        "issue_token",
    )
    change_fields = (
        "account",
        "prefix",
        "name",
        "rpm_limit",
        "spend_limit",
        "spend_period",
        "expires_at",
        "allowed_models",
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
        return "no limit" if obj.spend_limit is None else usd_cell(obj.spend_limit)

    @admin.display(description="models")
    def models_display(self, obj: ApiKey) -> str:
        return ", ".join(obj.allowed_models) if obj.allowed_models else "all"

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
        token = form.cleaned_data["issue_token"]
        # The first submission of this form claims its token; a resent one (reload, back and submit, a double
        # click) issues nothing and is shown what the first issued.
        if not cache.add(_issued_key(token), {"user": request.user.pk, "key_ids": []}, _ISSUED_TTL_S):
            obj._resent_token = token  # type: ignore[attr-defined]
            return
        issued = [
            api_key_create(
                account=obj.account,
                name=obj.name,
                rpm_limit=obj.rpm_limit,
                spend_limit=obj.spend_limit,
                spend_period=obj.spend_period,
                expires_at=obj.expires_at,
                allowed_models=obj.allowed_models,
            )
            for _ in range(form.cleaned_data["count"])
        ]
        key_ids = [api_key.pk for api_key, _ in issued]
        cache.set(_issued_key(token), {"user": request.user.pk, "key_ids": key_ids}, _ISSUED_TTL_S)
        cache.set(_secrets_key(token), [secret for _, secret in issued], _SECRETS_TTL_S)
        obj.pk = key_ids[0]
        obj.refresh_from_db()
        obj._state.adding = False
        obj._issue_token = token  # type: ignore[attr-defined]
        obj._also_issued = [api_key for api_key, _ in issued[1:]]  # type: ignore[attr-defined]

    def log_addition(self, request: HttpRequest, obj: ApiKey, message: Any) -> Any:
        if getattr(obj, "_resent_token", None):
            return None
        for other in getattr(obj, "_also_issued", ()):
            super().log_addition(request, other, message)
        return super().log_addition(request, obj, message)

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        token = getattr(obj, "_issue_token", None) or getattr(obj, "_resent_token", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        # Post/redirect/get: reloading the page that shows the secrets never submits the form again.
        return HttpResponseRedirect(reverse("admin:accounts_apikey_issued", args=[token]))

    def get_urls(self) -> list[URLPattern]:
        issued = self.admin_site.admin_view(self.issued_view)
        return [path("issued/<str:token>/", issued, name="accounts_apikey_issued"), *super().get_urls()]

    def issued_view(self, request: HttpRequest, token: str) -> HttpResponse:
        """The keys one add form issued: their secrets on the first visit only, afterwards their prefixes."""
        permission_required(request, "accounts.add_apikey")
        record = cache.get(_issued_key(token))
        if record is None or record["user"] != request.user.pk:
            self.message_user(request, "There is no list of newly issued keys to show.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:accounts_apikey_changelist"))
        secrets_key = _secrets_key(token)
        secrets = cache.get(secrets_key)
        # Whoever deletes the entry shows it: two requests at once cannot both show the secrets.
        if not secrets or not cache.delete(secrets_key):
            secrets = []
        keys = list(ApiKey.objects.filter(pk__in=record["key_ids"]).select_related("account").order_by("pk"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API keys created" if len(keys) > 1 else "API key created",
            "api_key": keys[0] if keys else None,
            "issued": list(zip(keys, secrets, strict=True)) if secrets else [(key, None) for key in keys],
            "secrets_shown": bool(secrets),
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


def _issued_key(token: str) -> str:
    return f"admin:apikey-issued:{token}"


def _secrets_key(token: str) -> str:
    return f"admin:apikey-secrets:{token}"
