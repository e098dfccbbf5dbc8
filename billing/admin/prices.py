"""The Price and RouteCost admins: versions of what we sell a model at and of what a route costs us,
added through billing.services (price_set, route_cost_set), never edited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.utils import timezone

from core.usd import usd_exact

from ..forms import PriceForm, RouteCostForm
from ..models import Price, RouteCost
from ..services import price_set, route_cost_set

if TYPE_CHECKING:
    from django.forms import ModelForm
    from django.http import HttpRequest


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
        return usd_exact(obj.prompt)

    @admin.display(description="completion / 1M", ordering="completion")
    def completion_display(self, obj: Price) -> str:
        return usd_exact(obj.completion)

    @admin.display(description="cached prompt / 1M", ordering="cached_prompt")
    def cached_prompt_display(self, obj: Price) -> str:
        return "as prompt" if obj.cached_prompt is None else usd_exact(obj.cached_prompt)

    @admin.display(description="per request", ordering="request")
    def request_display(self, obj: Price) -> str:
        return usd_exact(obj.request)

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


@admin.register(RouteCost)
class RouteCostAdmin(admin.ModelAdmin[RouteCost]):
    """What a provider charges us per route, in versions: added, never edited; a scheduled one may be withdrawn."""

    form = RouteCostForm
    list_display = (
        "route",
        "prompt_display",
        "completion_display",
        "cached_prompt_display",
        "request_display",
        "effective_from",
        "created_by",
        "created_at",
    )
    list_filter = ("route__provider", "effective_from")
    search_fields = ("route__model__public_id", "route__provider__name", "route__upstream_model")
    list_select_related = ("route__model", "route__provider", "created_by")
    autocomplete_fields = ("route",)
    date_hierarchy = "effective_from"

    prompt_display = PriceAdmin.prompt_display
    completion_display = PriceAdmin.completion_display
    cached_prompt_display = PriceAdmin.cached_prompt_display
    request_display = PriceAdmin.request_display

    def get_readonly_fields(self, request: HttpRequest, obj: RouteCost | None = None) -> tuple[str, ...]:
        return () if obj is None else ("created_by", "created_at")

    def get_fields(self, request: HttpRequest, obj: RouteCost | None = None) -> tuple[str, ...]:
        fields = ("route", "prompt", "completion", "cached_prompt", "request", "effective_from")
        return fields if obj is None else (*fields, "created_by", "created_at")

    def has_change_permission(self, request: HttpRequest, obj: RouteCost | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RouteCost | None = None) -> bool:
        return obj is not None and obj.effective_from > timezone.now() and super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: RouteCost, form: ModelForm, change: bool) -> None:
        cost = route_cost_set(
            route_id=obj.route_id,
            prompt=obj.prompt,
            completion=obj.completion,
            cached_prompt=obj.cached_prompt,
            request=obj.request,
            effective_from=obj.effective_from,
            created_by=request.user,
        )
        obj.pk = cost.pk
        obj.refresh_from_db()
        obj._state.adding = False
