"""Admin for the catalog (providers, models, routes) and the read-only record of generations."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.admin import AccountSearchMixin
from billing.models import Hold, LedgerEntry, Price, RouteCost
from billing.selectors import price_current_for, route_cost_current_for
from core.admin import BoundedListMixin, IdSearchMixin, ReadOnlyMixin, admin_link, usd_cell
from core.exports import CsvExportMixin
from core.usd import usd_exact

from .models import Generation, Model, Provider, Route, StoredResponse
from .surfaces import SURFACES

if TYPE_CHECKING:
    from django.http import HttpRequest


class SecretField(forms.CharField):
    """A password-style field that is never filled in; blank means "keep what is stored"."""

    widget = forms.PasswordInput(render_value=False)

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(data)


class ProviderForm(forms.ModelForm):
    api_key = SecretField(
        label="API key", required=False, max_length=500, help_text="Leave blank to keep the current key."
    )
    clear_api_key = forms.BooleanField(label="Remove the stored key", required=False)

    class Meta:
        model = Provider
        fields = (
            "name",
            "base_url",
            "api_key",
            "clear_api_key",
            "api_key_env",
            "connect_timeout_s",
            "read_timeout_s",
            "extra_headers",
            "data_collection",
            "supported_parameters",
            "enabled",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("clear_api_key"):
            cleaned["api_key"] = ""
        elif not cleaned.get("api_key"):
            cleaned["api_key"] = self.instance.api_key
        return cleaned


def _route_cost_text(route: Route) -> str:
    """The route's cost in force (prompt / completion per 1M) with a link to add a version."""
    if not route.pk:
        return "—"
    cost = route_cost_current_for(route.pk)
    text = "unknown" if cost is None else f"{usd_exact(cost.prompt)} / {usd_exact(cost.completion)}"
    add_url = f"{reverse('admin:billing_routecost_add')}?route={route.pk}"
    return format_html('{} &nbsp; <a href="{}">add a cost version</a>', text, add_url)


class RouteInline(admin.TabularInline[Route, Model]):
    model = Route
    fields = ("provider", "upstream_model", "api", "priority", "supported_parameters", "enabled", "current_cost")
    readonly_fields = ("current_cost",)
    autocomplete_fields = ("provider",)
    extra = 0

    @admin.display(description="cost to us / 1M (prompt, completion)")
    def current_cost(self, obj: Route) -> str:
        return _route_cost_text(obj)


class RouteCostHistoryInline(ReadOnlyMixin, admin.TabularInline[RouteCost, Route]):
    """Every cost version of the route, newest first; a new version is added from the Route cost admin."""

    model = RouteCost
    verbose_name_plural = "cost history"
    fields = ("prompt", "completion", "cached_prompt", "request", "effective_from", "created_by", "created_at")
    readonly_fields = fields
    ordering = ("-effective_from",)
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[RouteCost]:
        return super().get_queryset(request).select_related("created_by")


class PriceHistoryInline(ReadOnlyMixin, admin.TabularInline[Price, Model]):
    """Every price version of the model, newest first; a new version is added from the Price admin."""

    model = Price
    verbose_name_plural = "price history"
    fields = ("prompt", "completion", "cached_prompt", "request", "effective_from", "created_by", "created_at")
    readonly_fields = fields
    ordering = ("-effective_from",)
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[Price]:
        return super().get_queryset(request).select_related("created_by")


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin[Provider]):
    form = ProviderForm
    list_display = (
        "name",
        "base_url",
        "api_key_masked",
        "api_key_env",
        "enabled",
        "route_count",
        "connect_timeout_s",
        "read_timeout_s",
    )
    list_filter = ("enabled", "data_collection")
    search_fields = ("name", "base_url")
    readonly_fields = ("api_key_masked", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "base_url", "enabled")}),
        ("Credentials", {"fields": ("api_key_masked", "api_key", "clear_api_key", "api_key_env")}),
        ("Connection", {"fields": ("connect_timeout_s", "read_timeout_s", "extra_headers")}),
        ("Routing", {"fields": ("data_collection", "supported_parameters")}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="key in use")
    def api_key_masked(self, obj: Provider) -> str:
        return obj.api_key_masked

    @admin.display(description="routes", ordering="route_count")
    def route_count(self, obj: Provider) -> int:
        return obj.route_count  # type: ignore[attr-defined]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Provider]:
        return super().get_queryset(request).annotate(route_count=Count("routes"))


@admin.register(Model)
class CatalogModelAdmin(admin.ModelAdmin[Model]):
    list_display = ("public_id", "name", "enabled", "current_price", "context_length", "max_output_tokens")
    list_filter = ("enabled", "routes__provider")
    search_fields = ("public_id", "name")
    date_hierarchy = "created_at"
    readonly_fields = ("current_price", "created_at")
    fields = (
        "public_id",
        "name",
        "description",
        "enabled",
        "context_length",
        "max_output_tokens",
        "input_modalities",
        "output_modalities",
        "tokenizer",
        "is_moderated",
        "supported_parameters",
        "current_price",
        "created_at",
    )
    inlines = (RouteInline, PriceHistoryInline)

    @admin.display(description="current price / 1M (prompt, completion)")
    def current_price(self, obj: Model) -> str:
        add_url = f"{reverse('admin:billing_price_add')}?model={obj.pk}" if obj.pk else ""
        price = price_current_for(obj.pk) if obj.pk else None
        if price is None:
            text = "unpriced: hidden from the API"
        else:
            text = f"{usd_exact(price.prompt)} / {usd_exact(price.completion)}"
        if not add_url:
            return text
        return format_html('{} &nbsp; <a href="{}">add a price version</a>', text, add_url)


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin[Route]):
    list_display = ("model", "provider", "upstream_model", "api", "priority", "enabled")
    list_filter = ("enabled", "provider")
    search_fields = ("model__public_id", "provider__name", "upstream_model")
    list_select_related = ("model", "provider")
    autocomplete_fields = ("model", "provider")
    readonly_fields = ("current_cost",)
    fields = ("model", "provider", "upstream_model", "api", "priority", "enabled", "current_cost")
    inlines = (RouteCostHistoryInline,)

    @admin.display(description="cost to us / 1M (prompt, completion)")
    def current_cost(self, obj: Route) -> str:
        return _route_cost_text(obj)


class SurfaceFilter(admin.SimpleListFilter):
    """The surfaces from their registry: Django's own filter would read every row for the distinct values."""

    title = "surface"
    parameter_name = "surface"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(surface.name, surface.name) for surface in SURFACES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Generation]) -> QuerySet[Generation]:
        return queryset.filter(surface=self.value()) if self.value() else queryset


# A filter on a value that almost no row has reads back through the whole table to find 50 rows; values
# set at settlement cannot get a partial index without costing every settlement its HOT update, so
# those filters look at the recent generations only, and say so.
RARE_WINDOW = timedelta(days=7)
RARE_WINDOW_TEXT = "last 7 days"


class RecentRareFilter(admin.SimpleListFilter):
    """A choice field's filter whose rare values (`rare`) look at the last RARE_WINDOW only."""

    field: str
    values: list[tuple[str, str]]
    rare: tuple[str, ...]

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            (value, f"{label} ({RARE_WINDOW_TEXT})" if value in self.rare else label) for value, label in self.values
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Generation]) -> QuerySet[Generation]:
        value = self.value()
        if not value:
            return queryset
        if value in self.rare:
            queryset = queryset.filter(started_at__gte=timezone.now() - RARE_WINDOW)
        return queryset.filter(**{self.field: value})


class StatusFilter(RecentRareFilter):
    """Pending is read from the open holds (a small, indexed set): a pending generation holds its reserve.

    Failed and cancelled are rare outcomes: they look at the last RARE_WINDOW.
    """

    title = "status"
    parameter_name = "status__exact"
    field = "status"
    values = Generation.Status.choices
    rare = (Generation.Status.FAILED, Generation.Status.CANCELLED)

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            (value, f"{label} (hold open)" if value == Generation.Status.PENDING else label)
            for value, label in super().lookups(request, model_admin)
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Generation]) -> QuerySet[Generation]:
        if self.value() == Generation.Status.PENDING:
            open_holds = Hold.objects.filter(status=Hold.Status.OPEN).values("reference")
            return queryset.filter(pk__in=open_holds, status=Generation.Status.PENDING)
        return super().queryset(request, queryset)


class UsageSourceFilter(RecentRareFilter):
    title = "usage source"
    parameter_name = "usage_source__exact"
    field = "usage_source"
    values = Generation.UsageSource.choices
    rare = (Generation.UsageSource.ESTIMATED, Generation.UsageSource.NONE)


class UpstreamCostSourceFilter(RecentRareFilter):
    title = "upstream cost source"
    parameter_name = "upstream_cost_source__exact"
    field = "upstream_cost_source"
    values = Generation.UpstreamCostSource.choices
    rare = (Generation.UpstreamCostSource.REPORTED,)


class ProviderFilter(admin.SimpleListFilter):
    """The providers from their small table; "none" (nothing was routed) looks at the last RARE_WINDOW only."""

    title = "provider"
    parameter_name = "provider"
    NONE = "none"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        providers = [(str(pk), name) for pk, name in Provider.objects.order_by("name").values_list("pk", "name")]
        return [*providers, (self.NONE, f"none ({RARE_WINDOW_TEXT})")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Generation]) -> QuerySet[Generation]:
        value = self.value()
        if value == self.NONE:
            return queryset.filter(provider__isnull=True, started_at__gte=timezone.now() - RARE_WINDOW)
        return queryset.filter(provider_id=int(value)) if value and value.isdigit() else queryset


@admin.register(Generation)
class GenerationAdmin(
    CsvExportMixin, ReadOnlyMixin, AccountSearchMixin, BoundedListMixin, admin.ModelAdmin[Generation]
):
    """One row per request; written by the request path only."""

    list_display = (
        "id",
        "account_link",
        "model",
        "surface",
        "status",
        "usage_source",
        "tokens",
        "cost_cell",
        "latency_ms",
        "started_at",
    )
    list_filter = (
        StatusFilter,
        SurfaceFilter,
        UsageSourceFilter,
        UpstreamCostSourceFilter,
        "stream",
        "model",
        ProviderFilter,
        "started_at",
    )
    # Shown as the search box; what a term matches is AccountSearchMixin's: index lookups only.
    search_fields = ("id", "request_id")
    search_exact_fields = ("id", "request_id")
    search_key_field = "api_key"
    search_help_text = (
        "A generation id, a request id, a key prefix, or an account (#id, e-mail, @username, part of its name)."
    )
    list_select_related = ("account", "model")
    autocomplete_fields = ("account", "api_key", "model", "price", "provider")
    # No date_hierarchy: listing which months exist reads the whole table. The started_at filter is ranges.
    list_per_page = 50
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "request_id",
                    "account",
                    "api_key",
                    "user",
                    "origin",
                    "app",
                    "model",
                    "surface",
                    "stream",
                )
            },
        ),
        ("Upstream", {"fields": ("provider", "upstream_model", "upstream_id")}),
        ("Outcome", {"fields": ("status", "finish_reason", "error")}),
        (
            "Usage",
            {"fields": ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "usage_source")},
        ),
        (
            "Money",
            {
                "fields": (
                    "price",
                    "hold_display",
                    "cost_display",
                    "upstream_cost_display",
                    "upstream_cost_source",
                    "margin_display",
                    "charge",
                )
            },
        ),
        ("Timing", {"fields": ("started_at", "finished_at", "latency_ms", "ttft_ms")}),
    )
    readonly_fields = ("hold_display", "cost_display", "upstream_cost_display", "margin_display", "charge")
    export_columns = (
        ("id", "id"),
        ("started_at", "started_at"),
        ("finished_at", "finished_at"),
        ("account_id", "account_id"),
        ("api_key_id", "api_key_id"),
        ("model", "model__public_id"),
        ("provider", "provider__name"),
        ("surface", "surface"),
        ("stream", "stream"),
        ("status", "status"),
        ("finish_reason", "finish_reason"),
        ("prompt_tokens", "prompt_tokens"),
        ("completion_tokens", "completion_tokens"),
        ("cached_tokens", "cached_tokens"),
        ("usage_source", "usage_source"),
        ("cost_usd", "cost"),
        ("upstream_cost_usd", "upstream_cost"),
        ("margin_usd", "margin"),
        ("latency_ms", "latency_ms"),
        ("ttft_ms", "ttft_ms"),
        ("app", "app"),
        ("request_id", "request_id"),
    )

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: Generation) -> str:
        return admin_link(obj.account)

    @admin.display(description="tokens in → out")
    def tokens(self, obj: Generation) -> str:
        cached = f" ({obj.cached_tokens} cached)" if obj.cached_tokens else ""
        return f"{obj.prompt_tokens}{cached} → {obj.completion_tokens}"

    @admin.display(description="cost", ordering="cost")
    def cost_display(self, obj: Generation) -> str:
        return usd_exact(obj.cost)

    @admin.display(description="cost", ordering="cost")
    def cost_cell(self, obj: Generation) -> str:
        return usd_cell(obj.cost)

    @admin.display(description="hold")
    def hold_display(self, obj: Generation) -> str:
        return usd_exact(obj.hold_amount)

    @admin.display(description="upstream's cost")
    def upstream_cost_display(self, obj: Generation) -> str:
        return usd_exact(obj.upstream_cost)

    @admin.display(description="margin", ordering="margin")
    def margin_display(self, obj: Generation) -> str:
        return usd_exact(obj.margin)

    @admin.display(description="charge")
    def charge(self, obj: Generation) -> str:
        entry = LedgerEntry.objects.filter(idempotency_key=f"charge:{obj.pk}").first()
        if entry is None:
            return "no charge recorded"
        return admin_link(entry, f"{usd_exact(entry.amount)} (entry #{entry.pk})")


@admin.register(StoredResponse)
class StoredResponseAdmin(ReadOnlyMixin, IdSearchMixin, BoundedListMixin, admin.ModelAdmin[StoredResponse]):
    """Responses answers kept for `previous_response_id` (`store`); written after their charge only."""

    list_display = ("id", "account_link", "model", "previous_response_id", "created_at")
    list_filter = ("created_at",)
    search_fields = ("id__exact", "previous_response_id__exact")
    search_id_fields = ("account_id",)
    list_select_related = ("account",)
    autocomplete_fields = ("account", "api_key")
    date_hierarchy = "created_at"
    fields = ("id", "generation_link", "account", "api_key", "model", "previous_response_id", "created_at",
              "input_items", "output", "body")  # fmt: skip
    readonly_fields = ("generation_link",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Not money: an operator may forget a stored conversation (the generation and its charge stay).
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    @admin.display(description="account", ordering="account__name")
    def account_link(self, obj: StoredResponse) -> str:
        return admin_link(obj.account)

    @admin.display(description="generation (its charge)")
    def generation_link(self, obj: StoredResponse) -> str:
        generation = Generation.objects.filter(pk=obj.pk).first()
        return admin_link(generation) if generation is not None else "—"
