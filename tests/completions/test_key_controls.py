# ruff: noqa: F811 -- the fixtures imported from test_chat_view are named by the tests that use them
"""A key's expiry and model allow-list, enforced on POST /v1/chat/completions from the key cache."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.keys import key_hash
from accounts.models import ApiKey
from billing.services import price_set
from completions.models import Generation
from tests.factories import ModelFactory, RouteFactory, key_for

from .test_chat_view import HI, FakeProvider, Shop, completion, provider, provider_server, shop  # noqa: F401

pytestmark = pytest.mark.django_db


def _other_model(shop: Shop):
    """A second priced model on the same provider as the shop's."""
    route = shop.model.routes.get()
    model = ModelFactory()
    RouteFactory(model=model, provider=route.provider, upstream_model=route.upstream_model)
    price_set(
        model_id=model.pk, prompt="0.15", completion="0.60", effective_from=model.created_at - timedelta(seconds=5)
    )
    return model


def test_an_expired_key_is_a_401_that_says_it_expired(shop: Shop, provider: FakeProvider):
    secret = key_for(shop.account)
    ApiKey.objects.filter(key_hash=key_hash(secret)).update(expires_at=timezone.now() - timedelta(minutes=1))

    response = shop.post({"model": shop.model.public_id, "messages": HI}, key=secret)

    assert response.status_code == 401
    error = response.json()["error"]
    # OpenAI's code for every refused key, so clients handle it as they do a revoked one; the message says why.
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
    assert error["message"].startswith("This API key expired on ")
    assert provider.received == []
    assert not Generation.objects.exists()


def test_a_key_expires_at_its_time_even_while_cached(shop: Shop, provider: FakeProvider, monkeypatch):
    expires = timezone.now() + timedelta(hours=1)
    secret = key_for(shop.account, expires_at=expires)
    provider.answer(completion("ok", {"prompt_tokens": 1, "completion_tokens": 1}))
    assert shop.post({"model": shop.model.public_id, "messages": HI}, key=secret).status_code == 200

    later = expires + timedelta(seconds=1)
    monkeypatch.setattr("accounts.principals.timezone.now", lambda: later)
    response = shop.post({"model": shop.model.public_id, "messages": HI}, key=secret)

    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("This API key expired on ")
    assert len(provider.received) == 1


def test_a_model_outside_the_allow_list_is_a_403_naming_it(shop: Shop, provider: FakeProvider):
    other = _other_model(shop)
    secret = key_for(shop.account, allowed_models=[shop.model.public_id])

    refused = shop.post({"model": other.public_id, "messages": HI}, key=secret)

    assert refused.status_code == 403
    assert refused["x-should-retry"] == "false"
    assert refused.json() == {
        "error": {
            "message": f"This API key may not use the model '{other.public_id}'. Ask for a key that allows it.",
            "type": "permission_error",
            "param": "model",
            "code": "model_not_allowed",
        }
    }
    assert provider.received == []
    assert not Generation.objects.exists()

    provider.answer(completion("ok", {"prompt_tokens": 1, "completion_tokens": 1}))
    assert shop.post({"model": shop.model.public_id, "messages": HI}, key=secret).status_code == 200


def test_a_fallback_model_outside_the_allow_list_is_refused_too(shop: Shop, provider: FakeProvider):
    other = _other_model(shop)
    secret = key_for(shop.account, allowed_models=[shop.model.public_id])

    response = shop.post({"models": [shop.model.public_id, other.public_id], "messages": HI}, key=secret)

    assert response.status_code == 403
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("model_not_allowed", "models")
    assert provider.received == []


def test_a_key_without_an_allow_list_uses_every_model_and_the_model_list_stays_whole(
    shop: Shop, provider: FakeProvider
):
    other = _other_model(shop)
    limited = key_for(shop.account, allowed_models=[shop.model.public_id])
    provider.answer(completion("ok", {"prompt_tokens": 1, "completion_tokens": 1}))
    assert shop.post({"model": other.public_id, "messages": HI}).status_code == 200

    listed = Client().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {limited}")
    assert listed.status_code == 200
    assert {shop.model.public_id, other.public_id} <= {m["id"] for m in listed.json()["data"]}
