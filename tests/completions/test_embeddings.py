"""POST /v1/embeddings in-process: Django's test client, the scripted provider of test_chat_view on a local
port, real PostgreSQL and Redis. The end-to-end suite (tests/e2e/test_embeddings.py) proves the same with
openai-python against gunicorn and the emulator.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from billing.models import Hold
from completions.models import Generation
from tests.completions import test_chat_view
from tests.completions.test_chat_view import (
    FUNDS,
    HI,
    PROVIDER_KEY,
    UPSTREAM_MODEL,
    FakeProvider,
    Shop,
    assert_nothing_moved,
    assert_settled_once,
    completion,
    decimal_json,
)
from tests.factories import funded_account, key_for

# test_chat_view's scripted provider and its priced model, as fixtures of this module too.
provider_server = test_chat_view.provider_server
provider = test_chat_view.provider
shop = test_chat_view.shop

pytestmark = pytest.mark.django_db

URL = "/v1/embeddings"
PROMPT_PRICE = Decimal("0.15")  # the `shop` model's prompt price per 1M tokens


def post(shop: Shop, body: Any, *, key: str | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    key = shop.key if key is None else key
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return Client().post(URL, raw, content_type="application/json", **headers)


def embedding_list(*vectors: Any, usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A provider's embedding list."""
    body: dict[str, Any] = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": UPSTREAM_MODEL,
    }
    if usage is not None:
        body["usage"] = usage
    return body


@dataclass
class Asked:
    body: dict[str, Any]
    raw_size: int


def ask(shop: Shop, **fields: Any) -> Asked:
    body = {"model": shop.model.public_id, **fields}
    return Asked(body, len(json.dumps(body).encode()))


@pytest.mark.usefixtures("money_path")
def test_an_embedding_list_is_relayed_with_its_exact_cost_and_charged_once(shop: Shop, provider: FakeProvider):
    provider.answer(embedding_list([0.25, -0.5], [0.125, 1.0], usage={"prompt_tokens": 3, "total_tokens": 3}))
    asked = ask(
        shop,
        input=["hello world", "goodbye"],
        encoding_format="float",
        dimensions=2,
        user="customer-42",
        provider={"allow_fallbacks": True},
    )
    response = post(shop, asked.body)
    assert response.status_code == 200, response.content
    answer = decimal_json(response.content)
    cost = Decimal(3) * PROMPT_PRICE / Decimal(10**6)
    assert cost == Decimal("0.00000045")
    assert answer == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [Decimal("0.25"), Decimal("-0.5")]},
            {"object": "embedding", "index": 1, "embedding": [Decimal("0.125"), Decimal("1.0")]},
        ],
        "model": shop.model.public_id,
        "usage": {"prompt_tokens": 3, "total_tokens": 3, "cost": cost},
    }
    generation_id = response["X-Generation-Id"]
    assert_settled_once(shop, generation_id, cost)
    generation = Generation.objects.get(pk=generation_id)
    assert (generation.surface, generation.prompt_tokens, generation.completion_tokens) == ("embeddings", 3, 0)
    assert generation.user == "customer-42"
    # The hold is the prompt's upper bound (one token per byte of the request) and no completion at all.
    assert Hold.objects.get(reference=generation_id).amount == Decimal(asked.raw_size) * PROMPT_PRICE / 10**6
    [received] = provider.received
    assert received.path == "/v1/embeddings"
    assert received.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert received.body == {
        "model": UPSTREAM_MODEL,
        "input": ["hello world", "goodbye"],
        "encoding_format": "float",
        "dimensions": 2,
        "user": "customer-42",
    }


def test_base64_vectors_are_relayed_as_the_provider_encoded_them(shop: Shop, provider: FakeProvider):
    provider.answer(embedding_list("AACAPwAAAEA=", usage={"prompt_tokens": 3, "total_tokens": 3}))
    response = post(shop, ask(shop, input="three word text", encoding_format="base64").body)
    answer = decimal_json(response.content)
    assert answer["data"][0]["embedding"] == "AACAPwAAAEA="
    assert provider.received[0].body["encoding_format"] == "base64"
    assert_settled_once(shop, response["X-Generation-Id"], Decimal(3) * PROMPT_PRICE / 10**6)


def test_without_usage_the_input_is_charged_on_the_estimate_of_a_token_per_four_bytes(
    shop: Shop, provider: FakeProvider
):
    provider.answer(embedding_list([0.5]))
    asked = ask(shop, input="no usage reported")
    response = post(shop, asked.body)
    answer = decimal_json(response.content)
    tokens = math.ceil(asked.raw_size / 4)
    cost = Decimal(tokens) * PROMPT_PRICE / 10**6
    assert answer["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens, "cost": cost}
    assert_settled_once(shop, response["X-Generation-Id"], cost)
    assert Generation.objects.get(pk=response["X-Generation-Id"]).usage_source == "estimated"


@pytest.mark.parametrize(
    "value",
    ["a string", ["two", "strings"], [1, 2, 3], [[1, 2], [3]]],
    ids=["string", "strings", "tokens", "token-arrays"],
)
def test_input_takes_every_shape_openai_documents(shop: Shop, provider: FakeProvider, value: Any):
    provider.answer(embedding_list([0.5], usage={"prompt_tokens": 2, "total_tokens": 2}))
    response = post(shop, ask(shop, input=value).body)
    assert response.status_code == 200, response.content
    assert provider.received[0].body["input"] == value


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({}, "input"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": 7}, "input"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": [[1], []]}, "input[1]"),
        ({"input": [[1], "mixed"]}, "input"),
        ({"input": [1, "x"]}, "input[0]"),
        ({"input": "x", "stream": True}, "stream"),
        ({"input": "x", "stream": False}, "stream"),
        ({"input": "x", "encoding_format": "binary"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "dimensions": "8"}, "dimensions"),
        ({"input": "x", "user": 42}, "user"),
    ],
)
def test_a_malformed_request_is_a_400_naming_the_field_and_moves_no_money(
    shop: Shop, provider: FakeProvider, fields: dict[str, Any], param: str
):
    response = post(shop, {"model": shop.model.public_id, **fields})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", param)
    assert provider.received == []
    assert_nothing_moved(shop)


def test_a_request_without_a_valid_key_is_a_401(shop: Shop, provider: FakeProvider):
    response = post(shop, ask(shop, input="x").body, key="sk-not-a-key")
    assert response.status_code == 401
    assert provider.received == []


def test_an_unknown_model_is_a_404(shop: Shop, provider: FakeProvider):
    response = post(shop, {"model": "nobody/nothing", "input": "x"})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "model_not_found")
    assert provider.received == []


def test_a_balance_below_the_hold_is_a_402_and_nothing_is_sent(shop: Shop, provider: FakeProvider):
    poor = funded_account("0.0000001")
    response = post(shop, ask(shop, input="x").body, key=key_for(poor))
    assert (response.status_code, response.json()["error"]["code"]) == (402, "insufficient_funds")
    assert provider.received == []


@pytest.mark.parametrize(
    "reply",
    [
        lambda p: p.answer({"object": "list", "model": "m"}),  # no `data`: not an embedding list
        lambda p: p.answer({"error": {"message": "down"}}, status=500),
    ],
    ids=["not-an-embedding-list", "provider-error"],
)
def test_a_failed_upstream_is_not_charged_and_its_hold_is_released(shop: Shop, provider: FakeProvider, reply: Any):
    reply(provider)
    response = post(shop, ask(shop, input="x").body)
    assert response.status_code == 502, response.content
    assert_nothing_moved(shop)
    generation = Generation.objects.get(account=shop.account)
    assert (generation.status, generation.surface) == ("failed", "embeddings")
    assert Hold.objects.get(reference=generation.pk).status == Hold.Status.RELEASED


def test_the_generation_endpoint_names_each_requests_surface(shop: Shop, provider: FakeProvider):
    provider.answer(embedding_list([0.5], usage={"prompt_tokens": 1, "total_tokens": 1}))
    embedded = post(shop, ask(shop, input="x").body)
    provider.answer(completion("hi", {"prompt_tokens": 1, "completion_tokens": 1}))
    chatted = shop.post({"model": shop.model.public_id, "messages": HI})
    surfaces = {}
    for response in (embedded, chatted):
        generation_id = response["X-Generation-Id"]
        read = Client().get(f"/v1/generation?id={generation_id}", HTTP_AUTHORIZATION=f"Bearer {shop.key}")
        surfaces[generation_id] = read.json()["data"]["surface"]
    assert list(surfaces.values()) == ["embeddings", "chat"]
    assert shop.money()[0] < FUNDS


def test_the_openapi_description_has_the_embeddings_operation():
    paths = Client().get("/v1/openapi.json").json()["paths"]
    assert paths["/v1/embeddings"]["post"]["operationId"] == "embeddings_create"
