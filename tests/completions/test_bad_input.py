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
    provider,
    provider_server,
    shop,
)

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
