"""More of the error contract, as the official SDK sees it: each status raises its exception with our code."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from accounts.models import Account
from accounts.services import account_set_status
from tests.factories import key_for

from .conftest import Shop, make_shop
from .test_openai_sdk import client

HI = [{"role": "user", "content": "hi"}]


def test_a_suspended_account_gets_permission_denied(router: str, shop: Shop):
    account_set_status(account=Account.objects.get(pk=shop.account_id), status=Account.Status.SUSPENDED)
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client(router, shop.key).chat.completions.create(model=shop.model.public_id, messages=HI)
    assert (exc.value.status_code, exc.value.code) == (403, "account_suspended")


def test_a_key_over_its_spend_limit_gets_permission_denied(router: str, shop: Shop):
    # The worst case of "hi" (4096 completion tokens × $0.60 / 1M) is over the key's $0.001.
    key = key_for(Account.objects.get(pk=shop.account_id), spend_limit=Decimal("0.001"), spend_period="daily")
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client(router, key).chat.completions.create(model=shop.model.public_id, messages=HI)
    assert (exc.value.status_code, exc.value.code) == (403, "key_spend_limit")


def test_an_oversized_body_is_a_413(router: str, shop: Shop):
    # MAX_REQUEST_BYTES is 4 MiB.
    with pytest.raises(openai.APIStatusError) as exc:
        client(router, shop.key).chat.completions.create(
            model=shop.model.public_id, messages=[{"role": "user", "content": "x" * (4 * 1024 * 1024)}]
        )
    assert (exc.value.status_code, exc.value.code) == (413, "request_too_large")
    assert exc.value.body["type"] == "invalid_request_error"


def test_a_provider_refusing_our_own_key_is_a_502_not_the_clients_401(router, emulator_url, transactional_db):
    shop = make_shop(emulator_url, routes=[emulator_url.replace("/v1", "/fail/401/v1")])
    with pytest.raises(openai.InternalServerError) as exc:
        client(router, shop.key).chat.completions.create(model=shop.model.public_id, messages=HI)
    assert (exc.value.status_code, exc.value.code) == (502, "upstream_error")


def test_a_stream_broken_by_the_upstream_raises_an_api_error_in_the_sdk(router: str, shop: Shop):
    stream = client(router, shop.key).chat.completions.create(
        model=shop.model.public_id,
        messages=HI,
        stream=True,
        extra_body={"emulator": {"completion_tokens": 10, "fail": "error_mid_stream"}},
    )
    text = ""
    with pytest.raises(openai.APIError) as exc:
        for chunk in stream:
            text += "".join(choice.delta.content or "" for choice in chunk.choices)
    assert text == "This is the ML Router"
    assert exc.value.body["code"] == "upstream_error"
