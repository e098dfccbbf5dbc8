"""Choosing and ordering candidates (completions/candidates.py), recent provider speed
(completions/provider_stats.py), the reasoning mapping and the catalog's routing keys."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.selectors import price_current_for
from completions import candidates as candidates_module
from completions.candidates import candidates_select
from completions.catalog import CatalogError, catalog_import
from completions.models import Generation, Provider, Route
from completions.preferences import ProviderPreferences, reasoning_effort_for_budget
from completions.provider_stats import ProviderStats, provider_stats
from completions.routing import CatalogEntry, RouteInfo
from tests.factories import PriceFactory, ProviderFactory, RouteFactory, funded_account, key_for

pytestmark = pytest.mark.django_db


def route(name: str, provider_id: int, cost: tuple[str, str] | None = None) -> RouteInfo:
    return RouteInfo(
        provider_id=provider_id,
        provider_name=name,
        base_url="http://127.0.0.1:9/v1",
        api_key="",
        extra_headers={},
        connect_timeout_s=1.0,
        read_timeout_s=1.0,
        upstream_model="m",
        cost_prompt=None if cost is None else Decimal(cost[0]),
        cost_completion=None if cost is None else Decimal(cost[1]),
    )


def entry(public_id: str, *routes: RouteInfo) -> CatalogEntry:
    price = PriceFactory()
    return CatalogEntry(
        model_id=price.model_id,
        public_id=public_id,
        context_length=1000,
        max_output_tokens=100,
        routes=routes,
        price=price,
        next_price=None,
    )


def select(monkeypatch, entries: dict[str, CatalogEntry], models: tuple[str, ...], **provider) -> list[str]:
    monkeypatch.setattr(candidates_module, "catalog_entry", entries.get)
    chosen = candidates_select(
        models=models, provider=ProviderPreferences(**provider), parameters=frozenset(), at=timezone.now()
    )
    return [f"{c.entry.public_id}@{c.route.provider_name}" for c in chosen]


def test_sort_by_price_puts_the_cheapest_route_cost_first_and_unknown_costs_last(monkeypatch):
    a = entry(
        "a/m",
        route("unknown", 1),
        route("dear", 2, ("1.00", "4.00")),
        route("cheap", 3, ("0.10", "0.40")),
    )

    assert select(monkeypatch, {"a/m": a}, ("a/m",), sort="price") == ["a/m@cheap", "a/m@dear", "a/m@unknown"]


def test_sorting_and_ordering_apply_within_each_model_and_models_keep_their_order(monkeypatch):
    a = entry("a/m", route("x", 1, ("2", "2")), route("y", 2, ("1", "1")))
    b = entry("b/m", route("x", 1, ("1", "1")), route("z", 3, ("5", "5")))
    entries = {"a/m": a, "b/m": b}

    assert select(monkeypatch, entries, ("a/m", "b/m"), sort="price") == ["a/m@y", "a/m@x", "b/m@x", "b/m@z"]
    assert select(monkeypatch, entries, ("b/m", "a/m"), order=("z",), sort="price") == [
        "b/m@z",
        "b/m@x",
        "a/m@y",
        "a/m@x",
    ]
    assert select(monkeypatch, entries, ("a/m", "b/m"), order=("x",), allow_fallbacks=False) == ["a/m@x", "b/m@x"]


def test_recent_speed_is_measured_per_provider_from_the_last_hours_completed_generations():
    fast, slow = ProviderFactory(), ProviderFactory()
    route_ = RouteFactory(provider=fast)
    price = PriceFactory(model=route_.model)
    account = funded_account()
    key_for(account)
    key = account.api_keys.get()
    now = timezone.now()
    rows = [
        # provider, ttft, latency, tokens, status, minutes ago
        (fast, 100, 600, 100, Generation.Status.COMPLETED, 1),
        (fast, 300, 1300, 300, Generation.Status.COMPLETED, 2),
        (fast, 200, None, 0, Generation.Status.COMPLETED, 3),
        (fast, 5, 10, 1000, Generation.Status.FAILED, 4),  # failures do not count
        (fast, 1, 2, 1000, Generation.Status.COMPLETED, 61),  # nor anything older than an hour
        (slow, None, 2000, 50, Generation.Status.COMPLETED, 5),  # not streamed: the whole answer's time
    ]
    for i, (provider, ttft, latency, tokens, status, ago) in enumerate(rows):
        Generation.objects.create(
            id=f"gen-{i}",
            account=account,
            api_key=key,
            model=route_.model,
            price=price,
            provider=provider,
            status=status,
            ttft_ms=ttft,
            latency_ms=latency,
            completion_tokens=tokens,
            started_at=now - timedelta(minutes=ago),
        )

    stats = provider_stats()

    # fast: 400 tokens in 0.5 s + 1 s of generating; median first token of 100, 300, 200 ms.
    assert stats[fast.pk] == ProviderStats(tokens_per_s=400 * 1000 / 1500, latency_ms=200.0)
    assert stats[slow.pk] == ProviderStats(tokens_per_s=50 * 1000 / 2000, latency_ms=2000.0)


@pytest.mark.parametrize(
    ("budget", "effort"), [(1, "low"), (4095, "low"), (4096, "medium"), (12287, "medium"), (12288, "high")]
)
def test_a_reasoning_budget_maps_to_the_documented_effort(budget, effort):
    assert reasoning_effort_for_budget(budget) == effort


CATALOG = {
    "providers": [
        {
            "name": "privy",
            "base_url": "https://privy.test/v1",
            "data_collection": "deny",
            "supported_parameters": ["temperature", "tools"],
        }
    ],
    "models": [
        {
            "id": "privy/model",
            "routes": [
                {"provider": "privy", "upstream_model": "m1", "supported_parameters": ["temperature", "top_k"]},
                {"provider": "privy", "upstream_model": "m2"},
            ],
            "price": {"prompt": "1", "completion": "2"},
        }
    ],
}


def test_the_catalog_imports_data_collection_and_supported_parameters():
    catalog_import(CATALOG)

    provider = Provider.objects.get(name="privy")
    assert (provider.data_collection, provider.supported_parameters) == ("deny", ["temperature", "tools"])
    routes = {r.upstream_model: r for r in Route.objects.filter(model__public_id="privy/model")}
    assert routes["m1"].declared_parameters() == ["temperature", "top_k"]
    assert routes["m2"].supported_parameters is None
    assert routes["m2"].declared_parameters() == ["temperature", "tools"]
    assert price_current_for(routes["m1"].model_id).prompt == Decimal("1")


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("provider", {"data_collection": "maybe"}, "'data_collection' must be one of allow, deny, unknown"),
        ("provider", {"supported_parameters": "temperature"}, "'supported_parameters' must be a list"),
        ("route", {"supported_parameters": [1]}, "'supported_parameters' must be a list"),
    ],
)
def test_the_catalog_refuses_malformed_routing_keys(where, value, message):
    document = {
        "providers": [{**CATALOG["providers"][0], **(value if where == "provider" else {})}],
        "models": [
            {
                **CATALOG["models"][0],
                "routes": [{"provider": "privy", "upstream_model": "m1", **(value if where == "route" else {})}],
            }
        ],
    }
    with pytest.raises(CatalogError, match=message):
        catalog_import(document)
    assert not Provider.objects.filter(name="privy").exists()
