"""Routing: which sellable model a request names, its routes in order and its price versions.

The request path reads the catalog through a short in-process cache (core.cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from billing.models import Price, RouteCost
from billing.money import ZERO, Rates
from core.cache import ProcessCache
from core.redaction import secret_register

from .models import Model, Route


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """What the upstream client needs to call one route."""

    provider_id: int
    provider_name: str
    base_url: str
    api_key: str
    extra_headers: dict[str, str]
    connect_timeout_s: float
    read_timeout_s: float
    upstream_model: str
    # The request parameters the route takes (client names); None: not declared, it gets the body unchanged.
    supported_parameters: frozenset[str] | None = None
    data_collection: str = "unknown"  # Provider.DataCollection
    # What the route costs us, USD per 1M tokens and per request (its RouteCost in force); None: unknown
    # (sorted last by `provider.sort=price`).
    cost_prompt: Decimal | None = None
    cost_completion: Decimal | None = None
    cost_cached_prompt: Decimal | None = None
    cost_request: Decimal | None = None
    cost_cache_write_prompt: Decimal | None = None
    api: str = "openai-chat"  # Route.Api: the API the route's provider speaks (completions/upstreams/)

    @property
    def cost_rates(self) -> Rates | None:
        """The route's cost as rates for `cost_for`, or None when the route has no cost price."""
        if self.cost_prompt is None or self.cost_completion is None:
            return None
        return Rates(
            self.cost_prompt,
            self.cost_completion,
            self.cost_cached_prompt,
            self.cost_request or ZERO,
            self.cost_cache_write_prompt,
        )


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A sellable model as the request path sees it: routes in order and its price versions."""

    model_id: int
    public_id: str
    context_length: int
    max_output_tokens: int
    routes: tuple[RouteInfo, ...]
    price: Price
    next_price: Price | None

    def price_at(self, at: datetime) -> Price:
        """The price version in force at `at` (a version that starts later is not used before then)."""
        if self.next_price is not None and self.next_price.effective_from <= at:
            return self.next_price
        return self.price


def sellable_models() -> QuerySet[Model]:
    """Enabled models with at least one enabled route to an enabled provider (pricing checked by callers)."""
    return (
        Model.objects.filter(enabled=True, routes__enabled=True, routes__provider__enabled=True)
        .distinct()
        .order_by("public_id")
    )


def _route_info(route: Route) -> RouteInfo:
    api_key = route.provider.resolved_api_key()
    secret_register(api_key)  # never in a log line
    # The cost in force when the entry loads: a new cost version counts from the next reload, a few
    # seconds late at most, which only the recorded margin of those requests sees.
    cost = route.costs_known[0] if route.costs_known else None
    return RouteInfo(
        provider_id=route.provider_id,
        provider_name=route.provider.name,
        base_url=route.provider.base_url.rstrip("/"),
        api_key=api_key,
        extra_headers=dict(route.provider.extra_headers or {}),
        connect_timeout_s=float(route.provider.connect_timeout_s),
        read_timeout_s=float(route.provider.read_timeout_s),
        upstream_model=route.upstream_model,
        supported_parameters=_declared(route),
        data_collection=route.provider.data_collection,
        cost_prompt=cost.prompt if cost else None,
        cost_completion=cost.completion if cost else None,
        cost_cached_prompt=cost.cached_prompt if cost else None,
        cost_request=cost.request if cost else None,
        cost_cache_write_prompt=cost.cache_write_prompt if cost else None,
        api=route.api,
    )


def _load(public_id: str, now: datetime, horizon: datetime) -> CatalogEntry | None:
    costs = RouteCost.objects.filter(effective_from__lte=now).order_by("-effective_from")
    routes = (
        Route.objects.filter(enabled=True, provider__enabled=True)
        .select_related("provider")
        .prefetch_related(Prefetch("costs", queryset=costs, to_attr="costs_known"))
    )
    model = (
        Model.objects.filter(public_id=public_id, enabled=True)
        .prefetch_related(Prefetch("routes", queryset=routes.order_by("priority", "id"), to_attr="live_routes"))
        .first()
    )
    if model is None or not model.live_routes:
        return None
    prices = list(Price.objects.filter(model=model, effective_from__lte=horizon).order_by("-effective_from")[:2])
    current = next((p for p in prices if p.effective_from <= now), None)
    if current is None:
        return None
    upcoming = prices[0] if prices[0].effective_from > now else None
    return CatalogEntry(
        model_id=model.pk,
        public_id=model.public_id,
        context_length=model.context_length,
        max_output_tokens=model.max_output_tokens,
        routes=tuple(_route_info(r) for r in model.live_routes),
        price=current,
        next_price=upcoming,
    )


def _declared(route: Route) -> frozenset[str] | None:
    names = route.declared_parameters()
    return None if names is None else frozenset(name.strip() for name in names)


# After CATALOG_CACHE_SECONDS an entry is reloaded; for this long beyond that it may still answer the
# requests that arrive while one of them reloads it (it knows the prices due until then too).
RELOAD_GRACE_SECONDS = 2.0

_catalog: ProcessCache[CatalogEntry | None] = ProcessCache(
    "catalog", ttl=lambda: settings.CATALOG_CACHE_SECONDS, grace=RELOAD_GRACE_SECONDS, max_entries=10_000
)


def catalog_entry(public_id: str) -> CatalogEntry | None:
    """The sellable model with this public id, or None (unknown, disabled, unrouted or unpriced).

    Cached per process for CATALOG_CACHE_SECONDS; the entry also knows the next price version due
    within that time and the reload grace, so a price change takes effect at its instant even from
    the cache. When an entry expires, one request reloads it while the others go on with it.
    """
    return _catalog.get(public_id, lambda: _load_now(public_id))


def _load_now(public_id: str) -> CatalogEntry | None:
    now = timezone.now()
    return _load(public_id, now, now + timedelta(seconds=_catalog.ttl() + RELOAD_GRACE_SECONDS))
