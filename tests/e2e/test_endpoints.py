"""The other /v1 endpoints, response headers, and how keys are refused."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import requests

from accounts.models import Account, ApiKey
from accounts.services import api_key_revoke
from billing.services import price_set
from completions.models import Model, Route

from .conftest import Shop, chat, cost_of, emulated_prompt_tokens, generation_settled, make_shop
from .test_openai_sdk import client

HI = [{"role": "user", "content": "hi"}]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def decimal_json(response: requests.Response) -> dict:
    return json.loads(response.text, parse_float=Decimal)


def test_models_are_listed_in_openai_shape_with_context_length_and_per_token_pricing(router: str, shop: Shop):
    hidden = Model.objects.create(public_id="e2e/disabled", name="Disabled", enabled=False)
    unpriced = Model.objects.create(public_id="e2e/unpriced", name="Unpriced")
    for model in (hidden, unpriced):
        Route.objects.create(model=model, provider=shop.model.routes.get().provider, upstream_model="emulator-small")
    price_set(model_id=hidden.pk, prompt="1", completion="1")

    listing = requests.get(f"{router}/models", timeout=10).json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == [shop.model.public_id]
    model = listing["data"][0]
    assert model == {
        "id": shop.model.public_id,
        "object": "model",
        "created": int(shop.model.created_at.timestamp()),
        "owned_by": "e2e",
        "canonical_slug": shop.model.public_id,
        "name": shop.model.name,
        "description": "",
        "context_length": 16000,
        "max_output_tokens": 4096,
        "architecture": {
            "modality": "text->text",
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "tokenizer": "Other",
            "instruct_type": None,
        },
        "pricing": {
            "prompt": "0.00000015",
            "completion": "0.0000006",
            "request": "0",
            "input_cache_read": "0.00000015",
            "input_cache_write": "0.00000015",
        },
        "top_provider": {"context_length": 16000, "max_completion_tokens": 4096, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": [],
    }
    api = client(router, shop.key)
    assert [m.id for m in api.models.list()] == [shop.model.public_id]
    # Ids hold a slash; the SDK puts them in the path as they are.
    assert api.models.retrieve(shop.model.public_id).model_extra["context_length"] == 16000
    for invisible in ("e2e/disabled", "e2e/unpriced", "e2e/never-heard-of"):
        response = requests.get(f"{router}/models/{invisible}", timeout=10)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"
        response = chat(router, shop.key, {"model": invisible, "messages": HI})
        assert (response.status_code, response.json()["error"]["param"]) == (404, "model")


def test_prices_are_listed_per_million_tokens_as_exact_strings(router, emulator_url, transactional_db):
    shop = make_shop(emulator_url, prompt="0.15", completion="0.60", cached_prompt="0.075", request_fee="0.0002")
    prices = requests.get(f"{router}/prices", timeout=10).json()
    assert (prices["object"], prices["currency"], prices["unit"]) == ("list", "USD", "1M tokens")
    (row,) = prices["data"]
    assert row["model"] == shop.model.public_id
    assert (row["prompt"], row["completion"], row["cached_prompt"], row["request"]) == (
        "0.15",
        "0.6",
        "0.075",
        "0.0002",
    )


def test_a_generation_is_looked_up_by_its_own_account_only(router: str, emulator_url, shop: Shop):
    # A `user` that looks like a placeholder the router once used for amounts comes back as sent.
    response = chat(router, shop.key, {"model": shop.model.public_id, "messages": HI, "user": "__COST__"})
    generation_id = response.json()["id"]
    # A plain answer is charged right after it is sent: wait for that before looking it up.
    generation_settled(generation_id)
    found = requests.get(f"{router}/generation", params={"id": generation_id}, headers=auth(shop.key), timeout=10)
    assert found.status_code == 200
    data = decimal_json(found)["data"]
    prompt = emulated_prompt_tokens(HI)
    assert data["id"] == generation_id
    assert (data["status"], data["usage_source"], data["user"]) == ("completed", "upstream", "__COST__")
    assert (data["prompt_tokens"], data["completion_tokens"], data["cost"]) == (prompt, 12, cost_of(prompt, 12))
    assert data["latency_ms"] >= 0

    stranger = make_shop(emulator_url)
    other = requests.get(f"{router}/generation", params={"id": generation_id}, headers=auth(stranger.key), timeout=10)
    assert (other.status_code, other.json()["error"]["code"]) == (404, "not_found")
    missing = requests.get(f"{router}/generation", headers=auth(shop.key), timeout=10)
    assert (missing.status_code, missing.json()["error"]["param"]) == (400, "id")
    anonymous = requests.get(f"{router}/generation", params={"id": generation_id}, timeout=10)
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "invalid_api_key")


def test_the_key_endpoint_reports_limits_usage_and_the_balance(router: str, shop: Shop):
    api_key = ApiKey.objects.get(account_id=shop.account_id)
    ApiKey.objects.filter(pk=api_key.pk).update(name="__BAL__", spend_limit=Decimal("5"), spend_period="daily")
    answer = chat(
        router, shop.key, {"model": shop.model.public_id, "messages": HI, "emulator": {"completion_tokens": 3}}
    )
    generation_settled(answer.json()["id"])
    cost = cost_of(emulated_prompt_tokens(HI), 3)

    response = requests.get(f"{router}/key", headers=auth(shop.key), timeout=10)
    data = decimal_json(response)["data"]
    assert (data["label"], data["name"]) == (api_key.prefix + "…", "__BAL__")
    assert data["rate_limit"] == {"requests": 1000, "interval": "1m"}
    assert (data["limit"], data["limit_period"]) == (5, "daily")
    assert data["usage"] == data["usage_period"] == cost
    assert data["account"] == {
        "id": shop.account_id,
        "balance": Decimal("10") - cost,
        "available": Decimal("10") - cost,
        "status": "active",
    }


def test_the_openapi_document_is_json_and_documents_chat_completions(router: str):
    response = requests.get(f"{router}/openapi.json", timeout=10)
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "post" in schema["paths"]["/v1/chat/completions"]
    assert "get" in schema["paths"]["/v1/credits"]
    assert "supported_parameters" in [p["name"] for p in schema["paths"]["/v1/models"]["get"]["parameters"]]


def test_a_revoked_key_is_refused_by_every_process_within_the_auth_cache_time(routers: list[str], shop: Shop):
    for router in routers:  # both processes now trust the key from their cache
        assert requests.get(f"{router}/key", headers=auth(shop.key), timeout=10).status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(account_id=shop.account_id))
    revoked_at = time.monotonic()
    pending = set(routers)
    while pending and time.monotonic() - revoked_at < 5:
        for router in sorted(pending):
            response = requests.get(f"{router}/key", headers=auth(shop.key), timeout=10)
            if response.status_code == 401:
                assert response.json()["error"]["code"] == "invalid_api_key"
                pending.discard(router)
        time.sleep(0.05)
    # AUTH_CACHE_SECONDS is 1 s in the test routers.
    assert not pending
    assert time.monotonic() - revoked_at < 2
    response = chat(routers[0], shop.key, {"model": shop.model.public_id, "messages": HI})
    assert response.status_code == 401


def test_unknown_paths_and_methods_answer_in_openai_shape(router: str, shop: Shop):
    for method, path in [("GET", "/nope"), ("POST", "/completions/legacy"), ("GET", "/chat")]:
        response = requests.request(method, f"{router}{path}", headers=auth(shop.key), timeout=10)
        assert response.status_code == 404
        assert response.json() == {
            "error": {
                "message": f"Unknown API path /v1{path}.",
                "type": "not_found_error",
                "param": None,
                "code": "not_found",
            }
        }
    response = requests.get(f"{router}/chat/completions", headers=auth(shop.key), timeout=10)
    assert response.json() == {
        "error": {
            "message": "Method GET is not allowed here.",
            "type": "invalid_request_error",
            "param": None,
            "code": "method_not_allowed",
        }
    }


def test_charged_responses_say_do_not_retry_and_carry_rate_limit_headers(router: str, emulator_url, transactional_db):
    shop = make_shop(emulator_url, rpm=50)
    body = {"model": shop.model.public_id, "messages": HI}
    plain = chat(router, shop.key, body)
    stream = chat(router, shop.key, {**body, "stream": True}, stream=True)
    assert stream.content.endswith(b"data: [DONE]\n\n")
    for response, remaining in ((plain, "49"), (stream, "48")):
        assert response.status_code == 200
        assert response.headers["x-should-retry"] == "false"
        assert response.headers["X-Generation-Id"].startswith("gen-")
        assert response.headers["X-RateLimit-Limit"] == "50"
        assert response.headers["X-RateLimit-Remaining"] == remaining
        assert 1 <= int(response.headers["X-RateLimit-Reset"]) <= 60
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    # Errors after the rate limit was counted say where the key stands too.
    unknown = chat(router, shop.key, {**body, "model": "e2e/none"})
    assert (unknown.status_code, unknown.headers["X-RateLimit-Remaining"]) == (404, "47")
    Account.objects.filter(pk=shop.account_id).update(held=Decimal("9.95"))  # leave $0.05 available
    poor = chat(router, shop.key, body)
    assert (poor.status_code, poor.headers["X-RateLimit-Remaining"]) == (402, "46")
    # Not charged, but sending it again unchanged would fail the same way.
    assert poor.headers["x-should-retry"] == "false"


def test_reads_on_the_same_connection_see_the_charge_of_the_answer_before(router: str, shop: Shop):
    # The charge is committed right after the answer is sent; the client's next request on that
    # connection (so, to that server process) waits for it rather than reading a pending generation.
    session = requests.Session()
    session.headers.update(auth(shop.key))
    body = {"model": shop.model.public_id, "messages": HI, "emulator": {"completion_tokens": 2}}
    cost = cost_of(emulated_prompt_tokens(HI), 2)
    for n in range(1, 21):
        answer = session.post(f"{router}/chat/completions", json=body, timeout=10)
        assert answer.status_code == 200
        found = session.get(f"{router}/generation", params={"id": answer.json()["id"]}, timeout=10)
        assert decimal_json(found)["data"]["status"] == "completed"
        assert decimal_json(found)["data"]["cost"] == cost
        account = decimal_json(session.get(f"{router}/key", timeout=10))["data"]["account"]
        assert account["balance"] == Decimal("10") - n * cost
