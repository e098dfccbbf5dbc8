"""Which (model, route) pairs a request may be served by, in the order they are tried.

The models come in the request's order (`model`, then `models`); each model's routes in catalog
priority order, reshaped by the request's `provider` preferences (completions/preferences.py). A request
without preferences keeps the catalog's order and touches nothing here but one loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.models import Price

from .errors import ApiError
from .preferences import MaxPrice, ProviderPreferences
from .provider_stats import provider_stats
from .routing import CatalogEntry, RouteInfo, catalog_entry

# A request parameter and the other name a route may declare it under.
PARAMETER_ALIASES = {
    "max_tokens": "max_completion_tokens",
    "max_completion_tokens": "max_tokens",
    "reasoning_effort": "reasoning",
}


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way to serve the request: a sellable model (its entry, with its price) and one of its routes."""

    entry: CatalogEntry
    route: RouteInfo


def route_takes(route: RouteInfo, parameter: str) -> bool:
    """Whether the route takes this request parameter (a route that declares nothing takes everything)."""
    declared = route.supported_parameters
    return declared is None or parameter in declared or PARAMETER_ALIASES.get(parameter) in declared


def candidates_select(
    *, models: tuple[str, ...], provider: ProviderPreferences, parameters: frozenset[str], at: datetime
) -> tuple[Candidate, ...]:
    """The candidates in the order to try them. Raises ApiError 404 when no model or no route is left."""
    entries = [entry for entry in map(catalog_entry, models) if entry is not None]
    if not entries:
        raise _no_model(models)
    if not provider.filters_routes:
        return tuple(Candidate(entry, route) for entry in entries for route in entry.routes)
    if provider.max_price is not None:
        entries = [entry for entry in entries if _within(entry.price_at(at), provider.max_price)]
        if not entries:
            raise _no_route("provider.max_price", "no requested model's price is within 'provider.max_price'")
    candidates = [Candidate(entry, route) for entry in entries for route in entry.routes]
    for param, why, keep in _filters(provider, parameters):
        candidates = [c for c in candidates if keep(c.route)]
        if not candidates:
            raise _no_route(param, why)
    ordered = tuple(c for entry in entries for c in _ordered(entry, candidates, provider))
    if not ordered:
        raise _no_route(
            "provider.order", "'provider.allow_fallbacks' is false and no route is from a provider in 'provider.order'"
        )
    return ordered


def candidates_models(candidates: tuple[Candidate, ...]) -> tuple[CatalogEntry, ...]:
    """The models among the candidates, in order (each model's candidates are together)."""
    entries: list[CatalogEntry] = []
    for candidate in candidates:
        if not entries or entries[-1] is not candidate.entry:
            entries.append(candidate.entry)
    return tuple(entries)


def _no_model(models: tuple[str, ...]) -> ApiError:
    if len(models) == 1:
        message = f"The model '{models[0]}' does not exist or is not available. See GET /v1/models."
    else:
        names = ", ".join(f"'{m}'" for m in models)
        message = f"None of the models {names} exists or is available. See GET /v1/models."
    return ApiError(404, message, code="model_not_found", param="model" if len(models) == 1 else "models")


def _no_route(param: str, why: str) -> ApiError:
    return ApiError(404, f"No route can serve this request: {why}.", code="no_route", param=param)


def _within(price: Price, cap: MaxPrice) -> bool:
    return not (
        (cap.prompt is not None and price.prompt > cap.prompt)
        or (cap.completion is not None and price.completion > cap.completion)
        or (cap.request is not None and price.request > cap.request)
    )


Filter = tuple[str, str, Callable[[RouteInfo], bool]]


def _filters(provider: ProviderPreferences, parameters: frozenset[str]) -> list[Filter]:
    """(the field, why nothing is left, the test a route must pass), in the order they apply."""
    filters: list[Filter] = []
    if provider.only is not None:
        only = provider.only
        filters.append(
            (
                "provider.only",
                "no route is from a provider in 'provider.only'",
                lambda r: r.provider_name.lower() in only,
            )
        )
    if provider.ignore:
        ignore = provider.ignore
        filters.append(
            (
                "provider.ignore",
                "every route is from a provider in 'provider.ignore'",
                lambda r: r.provider_name.lower() not in ignore,
            )
        )
    if provider.data_collection == "deny":
        filters.append(
            (
                "provider.data_collection",
                "no route is from a provider declared not to collect data ('provider.data_collection': 'deny')",
                lambda r: r.data_collection == "deny",
            )
        )
    if provider.require_parameters and parameters:
        names = ", ".join(sorted(parameters))
        filters.append(
            (
                "provider.require_parameters",
                f"no route takes every parameter of the request ({names}) and 'provider.require_parameters' is true",
                lambda r: all(route_takes(r, p) for p in parameters),
            )
        )
    return filters


def _ordered(entry: CatalogEntry, candidates: list[Candidate], provider: ProviderPreferences) -> list[Candidate]:
    """One model's remaining candidates: sorted, the ordered providers first, cut when fallbacks are off."""
    mine = [c for c in candidates if c.entry is entry]
    if provider.sort is not None:
        mine.sort(key=_SORT_KEYS[provider.sort]())
    if provider.order:
        rank = {name: i for i, name in enumerate(provider.order)}
        unranked = len(rank)
        mine.sort(key=lambda c: rank.get(c.route.provider_name.lower(), unranked))
        if not provider.allow_fallbacks:
            mine = [c for c in mine if c.route.provider_name.lower() in rank]
    elif not provider.allow_fallbacks:
        mine = mine[:1]
    return mine


_LAST = Decimal("Infinity")


def _by_price() -> Callable[[Candidate], Decimal]:
    def key(c: Candidate) -> Decimal:
        route = c.route
        if route.cost_prompt is None or route.cost_completion is None:
            return _LAST
        return route.cost_prompt + route.cost_completion

    return key


def _by_throughput() -> Callable[[Candidate], float]:
    stats = provider_stats()

    def key(c: Candidate) -> float:
        seen = stats.get(c.route.provider_id)
        return -seen.tokens_per_s if seen is not None and seen.tokens_per_s is not None else float("inf")

    return key


def _by_latency() -> Callable[[Candidate], float]:
    stats = provider_stats()

    def key(c: Candidate) -> float:
        seen = stats.get(c.route.provider_id)
        return seen.latency_ms if seen is not None and seen.latency_ms is not None else float("inf")

    return key


# Python's sort is stable: routes that tie (or lack a figure) keep their catalog priority order.
_SORT_KEYS: dict[str, Callable[[], Callable[[Candidate], Decimal | float]]] = {
    "price": _by_price,
    "throughput": _by_throughput,
    "latency": _by_latency,
}
