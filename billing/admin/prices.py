"""The Price and RouteCost admins: versions of what we sell a model at and of what a route costs us,
added through billing.services (price_set, route_cost_set), never edited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.utils import timezone

from core.admin import usd_cell

from ..forms import PriceForm, RouteCostForm
from ..models import Price, RouteCost
from ..services import price_set, route_cost_set

if TYPE_CHECKING:
    from django.forms import ModelForm
    from django.http import HttpRequest


_LIST = (
    "prompt_display",
    "completion_display",
    "cached_prompt_display",
    "cache_write_prompt_display",
    "request_display",
    "effective_from",
)
_RATES = ("prompt", "completion", "cached_prompt", "cache_write_prompt", "request")


class RateVersionsAdmin(admin.ModelAdmin):
    """Versions of per-1M-token rates owned by `owner` (a model's price, a route's cost): added through a
    billing service (`version_add`), never edited; a version not yet in force may be withdrawn (deleted)."""

    owner = ""
    date_hierarchy = "effective_from"

    @admin.display(description="prompt / 1M", ordering="prompt")
    def prompt_display(self, obj: Price | RouteCost) -> str:
        return usd_cell(obj.prompt)

    @admin.display(description="completion / 1M", ordering="completion")
    def completion_display(self, obj: Price | RouteCost) -> str:
        return usd_cell(obj.completion)

    @admin.display(description="cached prompt / 1M", ordering="cached_prompt")
    def cached_prompt_display(self, obj: Price | RouteCost) -> str:
        return "as prompt" if obj.cached_prompt is None else usd_cell(obj.cached_prompt)

    @admin.display(description="cache write / 1M", ordering="cache_write_prompt")
    def cache_write_prompt_display(self, obj: Price | RouteCost) -> str:
        return "as prompt" if obj.cache_write_prompt is None else usd_cell(obj.cache_write_prompt)

    @admin.display(description="per request", ordering="request")
    def request_display(self, obj: Price | RouteCost) -> str:
        return usd_cell(obj.request)

    def get_readonly_fields(self, request: HttpRequest, obj: Price | RouteCost | None = None) -> tuple[str, ...]:
        return () if obj is None else ("created_by", "created_at")

    def get_fields(self, request: HttpRequest, obj: Price | RouteCost | None = None) -> tuple[str, ...]:
        fields = (self.owner, *_RATES, "effective_from")
        return fields if obj is None else (*fields, "created_by", "created_at")

    def has_change_permission(self, request: HttpRequest, obj: Price | RouteCost | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Price | RouteCost | None = None) -> bool:
        # Only a scheduled version, before it takes effect; history stays.
        return obj is not None and obj.effective_from > timezone.now() and super().has_delete_permission(request, obj)

    def version_add(self, request: HttpRequest, obj: Price | RouteCost) -> Price | RouteCost:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Price | RouteCost, form: ModelForm, change: bool) -> None:
        added = self.version_add(request, obj)
        obj.pk = added.pk
        obj.refresh_from_db()
        obj._state.adding = False


def _rates(obj: Price | RouteCost) -> dict:
    return {name: getattr(obj, name) for name in (*_RATES, "effective_from")}


@admin.register(Price)
class PriceAdmin(RateVersionsAdmin):
    """Price versions: what we sell a model at."""

    form = PriceForm
    owner = "model"
    list_display = ("model", *_LIST, "created_by", "created_at")
    list_filter = ("model", "effective_from")
    search_fields = ("model__public_id", "model__name")
    list_select_related = ("model", "created_by")
    autocomplete_fields = ("model",)

    def version_add(self, request: HttpRequest, obj: Price) -> Price:
        return price_set(model_id=obj.model_id, created_by=request.user, **_rates(obj))


@admin.register(RouteCost)
class RouteCostAdmin(RateVersionsAdmin):
    """What a provider charges us per route, in versions."""

    form = RouteCostForm
    owner = "route"
    list_display = ("route", *_LIST, "created_by", "created_at")
    list_filter = ("route__provider", "effective_from")
    search_fields = ("route__model__public_id", "route__provider__name", "route__upstream_model")
    list_select_related = ("route__model", "route__provider", "created_by")
    autocomplete_fields = ("route",)

    def version_add(self, request: HttpRequest, obj: RouteCost) -> RouteCost:
        return route_cost_set(route_id=obj.route_id, created_by=request.user, **_rates(obj))
