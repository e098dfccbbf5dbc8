"""import_catalog's route costs (versions, validation) and the model metadata keys."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from billing.models import RouteCost
from completions.catalog import CatalogError, catalog_import
from completions.models import Model, Provider, Route
from completions.routing import catalog_entry

pytestmark = pytest.mark.django_db

CATALOG = {
    "providers": [{"name": "openai", "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"}],
    "models": [
        {
            "id": "openai/gpt-4o-mini",
            "description": "Small and fast.",
            "input_modalities": ["text", "image"],
            "output_modalities": ["text"],
            "tokenizer": "GPT",
            "is_moderated": True,
            "supported_parameters": ["tools", "temperature"],
            "routes": [
                {
                    "provider": "openai",
                    "upstream_model": "gpt-4o-mini",
                    "cost": {"prompt": "0.10", "completion": "0.40", "cached_prompt": "0.05", "request": "0.000001"},
                }
            ],
            "price": {"prompt": "0.15", "completion": "0.60"},
        }
    ],
}


def costs() -> list[tuple[Decimal, Decimal, Decimal | None, Decimal]]:
    return list(
        RouteCost.objects.order_by("-effective_from").values_list("prompt", "completion", "cached_prompt", "request")
    )


def test_a_route_cost_is_imported_once_and_a_change_is_a_new_version():
    result = catalog_import(copy.deepcopy(CATALOG))
    assert result.costs_changed == 1
    assert costs() == [(Decimal("0.10"), Decimal("0.40"), Decimal("0.05"), Decimal("0.000001"))]

    assert catalog_import(copy.deepcopy(CATALOG)).costs_changed == 0
    assert RouteCost.objects.count() == 1

    changed = copy.deepcopy(CATALOG)
    changed["models"][0]["routes"][0]["cost"] = {"prompt": "0.12", "completion": "0.40"}
    assert catalog_import(changed).costs_changed == 1
    assert costs() == [
        (Decimal("0.12"), Decimal("0.40"), None, Decimal(0)),
        (Decimal("0.10"), Decimal("0.40"), Decimal("0.05"), Decimal("0.000001")),
    ]
    assert "new route cost versions: 1" in catalog_import(copy.deepcopy(CATALOG)).summary()


def test_the_route_cost_in_force_reaches_the_routing_entry():
    catalog_import(copy.deepcopy(CATALOG))

    (route,) = catalog_entry("openai/gpt-4o-mini").routes

    assert (route.cost_prompt, route.cost_completion, route.cost_cached_prompt, route.cost_request) == (
        Decimal("0.10"),
        Decimal("0.40"),
        Decimal("0.05"),
        Decimal("0.000001"),
    )


def test_a_route_without_cost_keeps_its_versions_and_has_none_in_routing():
    catalog_import(copy.deepcopy(CATALOG))
    without = copy.deepcopy(CATALOG)
    del without["models"][0]["routes"][0]["cost"]

    catalog_import(without)

    assert RouteCost.objects.count() == 1  # an absent key changes nothing


def test_a_route_with_no_cost_at_all_routes_with_unknown_cost():
    without = copy.deepcopy(CATALOG)
    del without["models"][0]["routes"][0]["cost"]
    catalog_import(without)

    (route,) = catalog_entry("openai/gpt-4o-mini").routes

    assert (route.cost_prompt, route.cost_completion, route.cost_rates) == (None, None, None)


def test_model_metadata_keys_are_imported():
    catalog_import(copy.deepcopy(CATALOG))

    model = Model.objects.get(public_id="openai/gpt-4o-mini")

    assert (model.description, model.input_modalities, model.output_modalities) == (
        "Small and fast.",
        ["text", "image"],
        ["text"],
    )
    assert (model.tokenizer, model.is_moderated, model.supported_parameters) == ("GPT", True, ["tools", "temperature"])


def test_a_routes_api_and_the_cache_write_prices_are_imported():
    document = copy.deepcopy(CATALOG)
    document["models"][0]["routes"][0]["api"] = "anthropic-messages"
    document["models"][0]["routes"][0]["cost"] = {"prompt": "1", "completion": "2", "cache_write_prompt": "1.25"}
    document["models"][0]["price"]["cache_write_prompt"] = "1.5"

    catalog_import(document)

    route = Route.objects.get(model__public_id="openai/gpt-4o-mini")
    assert route.api == Route.Api.ANTHROPIC_MESSAGES
    entry = catalog_entry("openai/gpt-4o-mini")
    assert (entry.routes[0].api, entry.routes[0].cost_cache_write_prompt) == ("anthropic-messages", Decimal("1.25"))
    assert entry.price.cache_write_prompt == Decimal("1.5")


def test_a_route_without_api_speaks_openai_chat():
    catalog_import(copy.deepcopy(CATALOG))
    assert Route.objects.get(model__public_id="openai/gpt-4o-mini").api == "openai-chat"


def _with_route(**keys) -> dict:
    document = copy.deepcopy(CATALOG)
    document["models"][0]["routes"][0].update(keys)
    return document


def _with_route_cost(cost) -> dict:
    document = copy.deepcopy(CATALOG)
    document["models"][0]["routes"][0]["cost"] = cost
    return document


def _with_model(**keys) -> dict:
    document = copy.deepcopy(CATALOG)
    document["models"][0].update(keys)
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_with_route_cost("0.10"), r"routes\[0\]\.cost must be an object"),
        (_with_route_cost({"prompt": "0.10"}), r"routes\[0\]\.cost: 'completion' is required"),
        (_with_route_cost({"prompt": "-1", "completion": "1"}), "cost.prompt: '-1' must be a non-negative number"),
        (_with_route_cost({"prompt": "1", "completion": "x"}), "cost.completion: 'x' is not a number"),
        (_with_route_cost({"prompt": "1", "completion": "1", "image": "1"}), r"unknown keys \['image'\]"),
        (_with_model(input_modalities="text"), "'input_modalities' must be a list of non-empty strings"),
        (_with_model(supported_parameters=["tools", 3]), "'supported_parameters' must be a list"),
        (_with_model(is_moderated="yes"), "'is_moderated' must be true or false"),
        (_with_model(tokenizer=5), "'tokenizer' must be a non-empty string"),
        (_with_route(api="grpc"), r"routes\[0\]: 'api' must be one of openai-chat, anthropic-messages"),
    ],
)
def test_a_malformed_cost_or_metadata_is_refused_and_nothing_is_written(document, message):
    with pytest.raises(CatalogError, match=message):
        catalog_import(document)
    assert not Provider.objects.exists() and not Route.objects.exists() and not RouteCost.objects.exists()
