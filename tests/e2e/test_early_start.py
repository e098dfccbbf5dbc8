"""An account this process saw with ample funds has its upstream call sent while the hold is placed;
a hold refused after all abandons the call: nothing reaches the client, nothing is charged."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.db.models import F

from accounts.models import Account
from billing.models import Hold, LedgerEntry
from completions.models import Generation

from .conftest import Shop, chat

HI = [{"role": "user", "content": "hi"}]


def router_log(tmp_path_factory, router: str) -> str:
    port = urlsplit(router).port
    return "".join(path.read_text() for path in tmp_path_factory.getbasetemp().glob(f"**/router-{port}.log"))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("refusal", "status", "code", "reason"),
    [
        ({"held": F("balance") - Decimal("0.05")}, 402, "insufficient_funds", "InsufficientFunds"),
        ({"status": Account.Status.SUSPENDED}, 403, "account_suspended", "AccountInactive"),
    ],
)
def test_a_call_sent_before_its_hold_is_abandoned_when_the_hold_is_refused(
    router: str, shop: Shop, tmp_path_factory, stream, refusal, status, code, reason
):
    body = {"model": shop.model.public_id, "messages": HI, "stream": stream, "emulator": {"completion_tokens": 2}}
    assert chat(router, shop.key, body).status_code == 200  # this process now knows the account is rich
    balance = shop.balance()
    abandoned = router_log(tmp_path_factory, router).count(f"abandoned: {reason}")
    # Another process drains or suspends the account; this one still remembers it rich.
    Account.objects.filter(pk=shop.account_id).update(**refusal)
    refused = chat(router, shop.key, body)
    assert (refused.status_code, refused.json()["error"]["code"]) == (status, code)
    assert "X-Generation-Id" not in refused.headers
    assert refused.headers["X-RateLimit-Limit"] and refused.headers["x-ratelimit-remaining-requests"]
    assert router_log(tmp_path_factory, router).count(f"abandoned: {reason}") == abandoned + 1
    assert Generation.objects.filter(account_id=shop.account_id).count() == 1
    assert LedgerEntry.objects.filter(account_id=shop.account_id, kind="charge").count() == 1
    assert not Hold.objects.filter(account_id=shop.account_id, status=Hold.Status.OPEN).exists()
    assert Account.objects.get(pk=shop.account_id).balance == balance

    # A refusal makes the process forget the account: the next call waits for its hold. The abandoned
    # call left the router's upstream connections sound.
    Account.objects.filter(pk=shop.account_id).update(held=0, status=Account.Status.ACTIVE)
    assert chat(router, shop.key, body).status_code == 200
    assert router_log(tmp_path_factory, router).count(f"abandoned: {reason}") == abandoned + 1
