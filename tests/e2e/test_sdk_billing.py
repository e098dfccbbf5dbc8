"""What the official SDK reports as cost is what the ledger charged, to the last of 10 decimal places."""

from __future__ import annotations

import json
from decimal import Decimal

from billing.models import LedgerEntry

from .conftest import Shop, assert_settled_once, cost_of, emulated_prompt_tokens, generation_settled, make_shop
from .test_openai_sdk import client


def cost_in(raw_json: str) -> Decimal:
    return json.loads(raw_json, parse_float=Decimal)["usage"]["cost"]


def test_the_balance_drops_by_exactly_the_sum_of_the_reported_costs(routers: list[str], shop: Shop):
    before = shop.balance()
    reported = []
    expected = []
    for i, completion_tokens in enumerate([1, 7, 12, 33, 5, 64]):
        messages = [{"role": "user", "content": " ".join(["word"] * (i + 1))}]
        api = client(routers[i % 2], shop.key)
        extra = {"emulator": {"completion_tokens": completion_tokens}}
        if i % 3 == 2:
            chunks = list(
                api.chat.completions.create(
                    model=shop.model.public_id, messages=messages, stream=True, extra_body=extra
                )
            )
            reported.append(Decimal(str(chunks[-1].usage.model_extra["cost"])))
        else:
            response = api.chat.completions.with_raw_response.create(
                model=shop.model.public_id, messages=messages, extra_body=extra
            )
            reported.append(cost_in(response.http_response.text))
        expected.append(cost_of(emulated_prompt_tokens(messages), completion_tokens))
    assert reported == expected
    assert before - shop.balance() == sum(expected)
    charges = LedgerEntry.objects.filter(account_id=shop.account_id, kind="charge")
    assert sorted(-c.amount for c in charges) == sorted(expected)


def test_cached_prompt_tokens_are_priced_apart_and_broken_down_in_cost_details(router, emulator_url, transactional_db):
    shop = make_shop(emulator_url, prompt="0.15", cached_prompt="0.075", completion="0.60", request_fee="0.0001")
    api = client(router, shop.key)
    messages = [{"role": "user", "content": "Hello there"}]  # 8 prompt tokens, 4 of them cached
    pricing = {"cached_price": "0.075", "fee": "0.0001"}
    expected = cost_of(8, 5, cached=4, **pricing)
    details = {
        "prompt": Decimal("0.0000006"),  # 4 uncached × $0.15 / 1M
        "cached_prompt": Decimal("0.0000003"),  # 4 cached × $0.075 / 1M
        "cache_write_prompt": Decimal(0),
        "completion": Decimal("0.000003"),  # 5 × $0.60 / 1M
        "request": Decimal("0.0001"),
    }
    assert sum(details.values()) == expected

    response = api.chat.completions.with_raw_response.create(
        model=shop.model.public_id,
        messages=messages,
        extra_body={"emulator": {"completion_tokens": 5, "cached_tokens": 4}},
    )
    completion = response.parse()
    assert completion.usage.prompt_tokens_details.cached_tokens == 4
    usage = json.loads(response.http_response.text, parse_float=Decimal)["usage"]
    assert (usage["cost"], usage["cost_details"]) == (expected, details)
    generation = generation_settled(completion.id)
    assert (generation.prompt_tokens, generation.cached_tokens, generation.completion_tokens) == (8, 4, 5)
    assert_settled_once(generation, expected)

    chunks = list(
        api.chat.completions.create(
            model=shop.model.public_id,
            messages=messages,
            stream=True,
            extra_body={"emulator": {"completion_tokens": 5, "cached_tokens": 4}},
        )
    )
    final = chunks[-1].usage
    assert final.prompt_tokens_details.cached_tokens == 4
    assert Decimal(str(final.model_extra["cost"])) == expected
    assert {k: Decimal(str(v)) for k, v in final.model_extra["cost_details"].items()} == details
