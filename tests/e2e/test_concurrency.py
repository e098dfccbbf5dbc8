"""Money and limits under concurrency, with requests spread over two server processes."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import requests

from accounts.models import Account
from billing.models import Hold, LedgerEntry
from completions.models import Generation

from .conftest import chat, cost_of, emulated_prompt_tokens, make_shop

HI = [{"role": "user", "content": "hi"}]


def fire(routers: list[str], key: str, body: dict, count: int) -> list[requests.Response]:
    """`count` requests at once, alternating between the routers."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda i: chat(routers[i % len(routers)], key, body, timeout=60), range(count)))


def test_a_hundred_concurrent_requests_never_overdraw_a_small_balance(routers, emulator_url, transactional_db):
    # Each request holds ~$0.057 (its bytes as prompt tokens, 40 completion tokens) and costs $0.0407.
    shop = make_shop(emulator_url, funds="0.30", prompt="100", completion="1000")
    body = {
        "model": shop.model.public_id,
        "messages": HI,
        "max_tokens": 40,
        "emulator": {"completion_tokens": 40, "delay_ms": 50},
    }
    cost = cost_of(emulated_prompt_tokens(HI), 40, prompt_price="100", completion_price="1000")
    assert cost == Decimal("0.0407")  # 7 prompt tokens × $100 / 1M + 40 × $1000 / 1M

    responses = fire(routers, shop.key, body, 100)

    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 402]
    assert len(ok) + len(refused) == 100, sorted({r.status_code for r in responses})
    assert ok and refused
    assert {r.json()["error"]["code"] for r in refused} == {"insufficient_funds"}
    assert [json.loads(r.text, parse_float=Decimal)["usage"]["cost"] for r in ok] == [cost] * len(ok)
    shop.balance()  # waits for the last charges, written right after their answers
    account = Account.objects.get(pk=shop.account_id)
    assert account.balance == Decimal("0.30") - cost * len(ok) >= 0
    assert account.held == 0
    charges = LedgerEntry.objects.filter(account=account, kind="charge")
    assert sorted(c.reference for c in charges) == sorted(r.headers["X-Generation-Id"] for r in ok)
    assert min(e.balance_after for e in LedgerEntry.objects.filter(account=account)) >= 0
    assert not Hold.objects.filter(account=account, status=Hold.Status.OPEN).exists()
    assert Generation.objects.filter(account=account).count() == len(ok)


def test_the_rate_limit_holds_across_two_server_processes(routers, emulator_url, transactional_db):
    shop = make_shop(emulator_url, rpm=10)
    body = {"model": shop.model.public_id, "messages": HI, "emulator": {"completion_tokens": 1}}

    responses = fire(routers, shop.key, body, 30)

    accepted = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    assert (len(accepted), len(limited)) == (10, 20)
    # One window in Redis: every accepted request saw a different count of what remains.
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in accepted) == list(range(10))
    for response in limited:
        assert response.json()["error"]["code"] == "rate_limit"
        assert response.headers["X-RateLimit-Limit"] == "10"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert 1 <= int(response.headers["X-RateLimit-Reset"]) <= 60
    shop.balance()  # waits for the last charges, written right after their answers
    assert LedgerEntry.objects.filter(account_id=shop.account_id, kind="charge").count() == 10
