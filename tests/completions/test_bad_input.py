"""Bad input is a 4xx, never a 5xx: numbers too big to hold money for are refused before anything moves."""

# ruff: noqa: F811  (pytest fixtures imported from another module are parameters here)

from __future__ import annotations

import pytest

from completions.surfaces.chat import MAX_TOKENS_LIMIT
from tests.completions.test_chat_view import (  # noqa: F401  (fixtures)
    HI,
    FakeProvider,
    Shop,
    assert_nothing_moved,
    completion,
    provider,
    provider_server,
    shop,
)
from tests.completions.test_embeddings import post as embeddings_post
from tests.completions.test_messages import post as messages_post

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [MAX_TOKENS_LIMIT + 1, 10**17, 10**30, 2**63])
def test_a_huge_token_limit_on_a_model_without_an_output_cap_is_a_400(
    shop: Shop, provider: FakeProvider, name: str, value: int
):
    shop.model.max_output_tokens = 0  # no cap of its own: the request's number sizes the hold
    shop.model.save()

    response = shop.post({"model": shop.model.public_id, "messages": HI, name: value})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", name)
    assert provider.received == []
    assert_nothing_moved(shop)


def test_the_largest_token_limit_is_priced_and_refused_as_unaffordable_not_as_an_error(
    shop: Shop, provider: FakeProvider
):
    shop.model.max_output_tokens = 0
    shop.model.save()

    response = shop.post({"model": shop.model.public_id, "messages": HI, "max_tokens": MAX_TOKENS_LIMIT})

    assert response.status_code == 402  # its worst case, ~$1,288, is a storable amount the $10 balance lacks
    assert response.json()["error"]["code"] == "insufficient_funds"
    assert provider.received == []
    assert_nothing_moved(shop)


HUGE = 10**400  # a JSON integer Python reads exactly; math.isfinite on it raises OverflowError

CHAT_FIELDS = [
    ("temperature", HUGE),
    ("top_p", HUGE),
    ("presence_penalty", -HUGE),
    ("frequency_penalty", HUGE),
    ("seed", HUGE),
    ("logit_bias", {"50256": HUGE}),
    ("max_tokens", HUGE),
    ("max_completion_tokens", HUGE),
    ("n", HUGE),
]


@pytest.mark.parametrize(("name", "value"), CHAT_FIELDS)
def test_a_huge_number_in_any_chat_field_is_a_400_naming_it(shop: Shop, provider: FakeProvider, name: str, value):
    response = shop.post({"model": shop.model.public_id, "messages": HI, name: value})

    assert response.status_code == 400
    param = f"{name}.50256" if name == "logit_bias" else name
    assert response.json()["error"]["param"] == param
    assert provider.received == []
    assert_nothing_moved(shop)


def test_a_logit_bias_outside_its_range_is_a_400(shop: Shop, provider: FakeProvider):
    response = shop.post({"model": shop.model.public_id, "messages": HI, "logit_bias": {"7": 101}})
    assert (response.status_code, response.json()["error"]["param"]) == (400, "logit_bias.7")


def test_in_range_seed_and_logit_bias_are_forwarded_unchanged(shop: Shop, provider: FakeProvider):
    fields = {"seed": -(2**63), "logit_bias": {"7": -100, "8": 2.5}}
    provider.answer(completion("hello", {"prompt_tokens": 8, "completion_tokens": 2}))
    response = shop.post({"model": shop.model.public_id, "messages": HI, **fields})
    assert response.status_code == 200
    assert {name: provider.received[0].body[name] for name in fields} == fields


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("temperature", HUGE),
        ("top_p", -HUGE),
        ("max_tokens", HUGE),
        ("thinking", {"type": "enabled", "budget_tokens": HUGE}),
    ],
)
def test_a_huge_number_on_messages_is_an_invalid_request_error(shop: Shop, provider: FakeProvider, name: str, value):
    body = {"model": shop.model.public_id, "max_tokens": 16, "messages": HI, name: value}
    response = messages_post(shop, body)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert name in response.json()["error"]["message"]
    assert provider.received == []
    assert_nothing_moved(shop)


@pytest.mark.parametrize(
    ("name", "value", "param"),
    [("dimensions", HUGE, "dimensions"), ("input", [HUGE], "input[0]"), ("input", [[1, HUGE]], "input[0]")],
)
def test_a_huge_number_on_embeddings_is_a_400_naming_the_field(
    shop: Shop, provider: FakeProvider, name: str, value, param: str
):
    response = embeddings_post(shop, {"model": shop.model.public_id, "input": "hi", name: value})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert provider.received == []
    assert_nothing_moved(shop)
