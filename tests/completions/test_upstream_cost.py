"""What a generation cost us upstream and its margin, the request's origin and app, and the read endpoints
that show them (/v1/generation in OpenRouter's names, /v1/credits, /v1/models' metadata), in-process with
the scripted provider of test_chat_view."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from billing.models import LedgerEntry
from billing.services import ledger_adjust, ledger_credit, ledger_refund, price_set, route_cost_set
from completions.models import Generation, Route
from tests.completions import test_chat_view as chat
from tests.completions.test_chat_view import HI, URL, FakeProvider, Shop, decimal_json
from tests.factories import ModelFactory, ProviderFactory, RouteFactory, funded_account, key_for

pytestmark = pytest.mark.django_db

# The scripted provider and the shop routed to it, shared with the chat view's tests.
provider_server = chat.provider_server
provider = chat.provider
shop = chat.shop


def answer(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-upstream-7",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "fake-upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": usage,
    }


def post(shop: Shop, **headers: str) -> Any:
    body = json.dumps({"model": shop.model.public_id, "messages": HI}).encode()
    return Client().post(URL, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {shop.key}", **headers)


def settled(shop: Shop, response: Any) -> Generation:
    assert response.status_code == 200, response.content
    shop.money()
    return Generation.objects.get(pk=response["X-Generation-Id"])


def route_of(shop: Shop) -> Route:
    return Route.objects.get(model=shop.model)


@pytest.mark.usefixtures("money_path")
def test_a_cost_the_provider_reports_is_recorded_with_its_exact_margin(shop: Shop, provider: FakeProvider):
    route_cost_set(route_id=route_of(shop).pk, prompt="9", completion="9")  # the report wins over this
    provider.answer(answer({"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20, "cost": 0.000004}))

    generation = settled(shop, post(shop))

    # We charge 13 × $0.15 / 1M + 7 × $0.60 / 1M; the provider says it charged us $0.000004.
    assert generation.cost == Decimal("0.00000615")
    assert (generation.upstream_cost, generation.upstream_cost_source) == (Decimal("0.000004"), "reported")
    assert generation.margin == Decimal("0.00000215")


@pytest.mark.usefixtures("money_path")
def test_without_a_report_the_upstream_cost_is_the_charged_usage_at_the_routes_cost(shop: Shop, provider: FakeProvider):
    route = route_of(shop)
    earlier = shop.model.created_at - timedelta(hours=1)
    route_cost_set(route_id=route.pk, prompt="1", completion="1", effective_from=earlier)
    route_cost_set(route_id=route.pk, prompt="0.10", completion="0.40", cached_prompt="0.05", request="0.000001")
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 400}}
    provider.answer(answer(usage))

    generation = settled(shop, post(shop))

    # Ours: 1000 × $0.15 + 500 × $0.60 per 1M (no cached price: cached tokens at the prompt price).
    assert generation.cost == Decimal("0.00045")
    # Theirs: 600 × $0.10 + 400 × $0.05 + 500 × $0.40 per 1M, plus $0.000001 per request.
    assert (generation.upstream_cost, generation.upstream_cost_source) == (Decimal("0.000281"), "computed")
    assert generation.margin == Decimal("0.000169")


@pytest.mark.django_db(transaction=True)
def test_a_streamed_generation_records_its_computed_upstream_cost_too(shop: Shop, provider: FakeProvider):
    route_cost_set(route_id=route_of(shop).pk, prompt="0.10", completion="0.40")
    provider.stream(["Hel", "lo"], usage={"prompt_tokens": 9, "completion_tokens": 4})
    raw = json.dumps({"model": shop.model.public_id, "messages": HI, "stream": True}).encode()

    response = Client().post(URL, raw, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {shop.key}")
    b"".join(response.streaming_content)

    generation = settled(shop, response)
    # Ours: 9 × $0.15 + 4 × $0.60 per 1M; theirs: 9 × $0.10 + 4 × $0.40 per 1M.
    assert (generation.cost, generation.upstream_cost) == (Decimal("0.00000375"), Decimal("0.0000025"))
    assert (generation.upstream_cost_source, generation.margin) == ("computed", Decimal("0.00000125"))


def test_a_route_without_a_cost_and_no_report_records_no_upstream_cost(shop: Shop, provider: FakeProvider):
    provider.answer(answer({"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20}))

    generation = settled(shop, post(shop))

    assert generation.cost == Decimal("0.00000615")
    assert (generation.upstream_cost, generation.upstream_cost_source, generation.margin) == (None, "", None)


def test_a_route_cost_that_starts_later_is_not_used_yet(shop: Shop, provider: FakeProvider):
    later = shop.model.created_at + timedelta(days=1)
    route_cost_set(route_id=route_of(shop).pk, prompt="0.10", completion="0.40", effective_from=later)
    provider.answer(answer({"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20}))

    generation = settled(shop, post(shop))

    assert (generation.upstream_cost, generation.margin) == (None, None)


def test_a_request_that_is_not_charged_records_no_upstream_cost(shop: Shop, provider: FakeProvider):
    route_cost_set(route_id=route_of(shop).pk, prompt="0.10", completion="0.40")
    provider.answer({"error": {"message": "overloaded"}}, status=500)

    response = post(shop)

    assert response.status_code == 502
    shop.money()
    generation = Generation.objects.get(account=shop.account)
    assert generation.status == Generation.Status.FAILED
    assert (generation.cost, generation.upstream_cost, generation.margin) == (Decimal(0), None, None)


# --- origin and app, and GET /v1/generation in OpenRouter's names ----------------------------------------


def test_origin_and_app_come_from_http_referer_and_x_title_sanitized_and_truncated(shop: Shop, provider: FakeProvider):
    provider.answer(answer({"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20}))
    provider.answer(answer({"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20}))

    plain = settled(shop, post(shop, HTTP_HTTP_REFERER="https://app.example/chat", HTTP_X_TITLE="My App"))
    odd = settled(shop, post(shop, HTTP_HTTP_REFERER="https://x.example/" + "a" * 400, HTTP_X_TITLE=" Bad\x07\tApp "))

    assert (plain.origin, plain.app) == ("https://app.example/chat", "My App")
    assert odd.origin == ("https://x.example/" + "a" * 400)[:300]
    assert odd.app == "BadApp"


def test_a_generation_answers_in_openrouters_names_too(shop: Shop, provider: FakeProvider):
    usage = {"prompt_tokens": 13, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 5}}
    provider.answer(answer(usage))
    generation = settled(shop, post(shop, HTTP_HTTP_REFERER="https://app.example/", HTTP_X_TITLE="My App"))

    response = Client().get(f"/v1/generation?id={generation.pk}", HTTP_AUTHORIZATION=f"Bearer {shop.key}")

    assert response.status_code == 200
    data = decimal_json(response.content)["data"]
    # The existing names stay.
    assert (data["cost"], data["prompt_tokens"], data["completion_tokens"]) == (Decimal("0.00000615"), 13, 7)
    assert b'"total_cost": 0.00000615' in response.content  # an exact number, not a string
    assert {k: data[k] for k in OPENROUTER_NAMES} == {
        "total_cost": Decimal("0.00000615"),
        "tokens_prompt": 13,
        "tokens_completion": 7,
        "native_tokens_prompt": 13,
        "native_tokens_completion": 7,
        "native_tokens_cached": 5,
        "provider_name": generation.provider.name,
        "upstream_id": "chatcmpl-upstream-7",
        "generation_time": generation.latency_ms,
        "latency": generation.latency_ms,
        "streamed": False,
        "finish_reason": "stop",
        "origin": "https://app.example/",
        "app": "My App",
    }
    assert "upstream_cost" not in data and "margin" not in data  # what it cost us is ours to know


OPENROUTER_NAMES = (
    "total_cost",
    "tokens_prompt",
    "tokens_completion",
    "native_tokens_prompt",
    "native_tokens_completion",
    "native_tokens_cached",
    "provider_name",
    "upstream_id",
    "generation_time",
    "latency",
    "streamed",
    "finish_reason",
    "origin",
    "app",
)


# --- GET /v1/credits -------------------------------------------------------------------------------------


def test_credits_are_every_credit_and_usage_every_charge_to_the_last_decimal(shop: Shop, provider: FakeProvider):
    account = shop.account
    ledger_credit(account=account, amount=Decimal("0.0000000001"), idempotency_key="t:promo", kind="promo")
    ledger_adjust(account=account, amount=Decimal("-0.25"), idempotency_key="t:adjust", memo="correction")
    provider.answer(answer({"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20}))
    settled(shop, post(shop))
    ledger_refund(account=account, amount=Decimal("0.00000615"), idempotency_key="t:refund", memo="goodwill")

    response = Client().get("/v1/credits", HTTP_AUTHORIZATION=f"Bearer {shop.key}")

    assert response.status_code == 200
    # $10 funding + $0.0000000001 promo − $0.25 adjustment + $0.00000615 refund; one charge of $0.00000615.
    assert decimal_json(response.content) == {
        "data": {"total_credits": Decimal("9.7500061501"), "total_usage": Decimal("0.00000615")}
    }
    account.refresh_from_db()
    assert Decimal("9.7500061501") - Decimal("0.00000615") == account.balance
    assert LedgerEntry.objects.filter(account=account, kind="charge").count() == 1


def test_credits_need_a_key_and_show_only_the_keys_account(shop: Shop):
    other = funded_account("3.00")
    assert Client().get("/v1/credits").status_code == 401
    response = Client().get("/v1/credits", HTTP_AUTHORIZATION=f"Bearer {key_for(other)}")
    assert decimal_json(response.content)["data"] == {"total_credits": Decimal("3.00"), "total_usage": Decimal(0)}


# --- GET /v1/models: OpenRouter's metadata and the supported_parameters filter ---------------------------


@pytest.fixture
def two_models() -> tuple[Any, Any]:
    upstream = ProviderFactory()
    tools = ModelFactory(
        public_id="acme/tools",
        name="Acme Tools",
        description="Calls functions.",
        context_length=64000,
        max_output_tokens=8192,
        input_modalities=["text", "image"],
        output_modalities=["text"],
        tokenizer="GPT",
        is_moderated=True,
        supported_parameters=["tools", "tool_choice", "temperature"],
    )
    plain = ModelFactory(public_id="acme/plain", supported_parameters=["temperature"])
    for model in (tools, plain):
        RouteFactory(model=model, provider=upstream)
        price_set(
            model_id=model.pk,
            prompt="0.15",
            completion="0.60",
            cached_prompt="0.075" if model is tools else None,
            request="0.0001",
            effective_from=model.created_at - timedelta(seconds=5),
        )
    return tools, plain


def test_models_carry_openrouters_metadata(two_models):
    tools, _ = two_models

    body = Client().get("/v1/models/acme/tools").json()

    assert body == {
        "id": "acme/tools",
        "object": "model",
        "created": int(tools.created_at.timestamp()),
        "owned_by": "acme",
        "canonical_slug": "acme/tools",
        "name": "Acme Tools",
        "description": "Calls functions.",
        "context_length": 64000,
        "max_output_tokens": 8192,
        "architecture": {
            "modality": "text+image->text",
            "input_modalities": ["text", "image"],
            "output_modalities": ["text"],
            "tokenizer": "GPT",
            "instruct_type": None,
        },
        "pricing": {
            "prompt": "0.00000015",
            "completion": "0.0000006",
            "request": "0.0001",
            "input_cache_read": "0.000000075",
            "input_cache_write": "0.00000015",
        },
        "top_provider": {"context_length": 64000, "max_completion_tokens": 8192, "is_moderated": True},
        "per_request_limits": None,
        "supported_parameters": ["tools", "tool_choice", "temperature"],
    }


def test_a_model_without_metadata_gets_text_defaults_and_its_prompt_price_for_cache_reads(two_models):
    body = Client().get("/v1/models/acme/plain").json()

    assert body["architecture"]["input_modalities"] == ["text"]
    assert (body["architecture"]["modality"], body["architecture"]["tokenizer"]) == ("text->text", "Other")
    assert body["pricing"]["input_cache_read"] == body["pricing"]["prompt"] == "0.00000015"
    assert body["pricing"]["input_cache_write"] == body["pricing"]["prompt"]
    assert body["top_provider"]["is_moderated"] is False


@pytest.mark.parametrize(
    ("query", "listed"),
    [
        ("", ["acme/plain", "acme/tools"]),
        ("?supported_parameters=tools", ["acme/tools"]),
        ("?supported_parameters=temperature", ["acme/plain", "acme/tools"]),
        ("?supported_parameters=tools,%20temperature", ["acme/tools"]),
        ("?supported_parameters=tools,response_format", []),
    ],
)
def test_models_filter_by_supported_parameters_all_required(two_models, query, listed):
    body = Client().get(f"/v1/models{query}").json()
    assert [m["id"] for m in body["data"]] == listed


def test_a_models_parameters_include_what_its_routes_declare(two_models):
    _, plain = two_models
    plain.routes.update(supported_parameters=["temperature", "response_format", "seed"])

    body = Client().get("/v1/models/acme/plain").json()
    assert body["supported_parameters"] == ["temperature", "response_format", "seed"]
    listed = Client().get("/v1/models?supported_parameters=response_format").json()
    assert [m["id"] for m in listed["data"]] == ["acme/plain"]
