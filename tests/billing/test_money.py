from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import Price
from billing.money import Usage, cost_for, usd


def _price(**kwargs) -> Price:
    values = {
        "prompt": Decimal("0.15"),
        "completion": Decimal("0.60"),
        "request": Decimal(0),
        "cached_prompt": None,
        "cache_write_prompt": None,
    }
    values.update(kwargs)
    return Price(**values)


def test_it_prices_tokens_per_million_exactly():
    cost = cost_for(Usage(prompt_tokens=12, completion_tokens=8), _price())
    assert cost.prompt == Decimal("0.0000018000")
    assert cost.completion == Decimal("0.0000048000")
    assert cost.total == Decimal("0.0000066000")


def test_it_prices_cached_prompt_tokens_at_their_own_rate():
    price = _price(prompt=Decimal("2.50"), completion=Decimal("10.00"), cached_prompt=Decimal("1.25"))
    cost = cost_for(Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400), price)
    assert cost.prompt == Decimal("0.0015000000")
    assert cost.cached_prompt == Decimal("0.0005000000")
    assert cost.completion == Decimal("0.0010000000")
    assert cost.total == Decimal("0.0030000000")


def test_cached_tokens_cost_the_prompt_rate_when_no_cached_rate_is_set():
    cost = cost_for(Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=400), _price())
    assert cost.total == Decimal("0.0001500000")


def test_it_adds_the_per_request_fee():
    cost = cost_for(Usage(prompt_tokens=0, completion_tokens=0), _price(request=Decimal("0.0004")))
    assert cost.total == Decimal("0.0004000000")


def test_it_rounds_half_up_to_ten_places():
    # 1 token at $0.00000000015 per 1M is 1.5e-16: rounds to zero; 0.000000000055 rounds up.
    assert cost_for(Usage(1, 0), _price(prompt=Decimal("0.00000000015"))).total == Decimal("0E-10")
    assert usd("0.00000000005") == Decimal("0.0000000001")
    assert usd("0.000000000049") == Decimal("0E-10")


def test_it_refuses_floats_on_the_money_path():
    with pytest.raises(TypeError):
        usd(0.1)


def test_it_prices_cache_writes_and_cache_reads_at_their_own_rates():
    price = _price(
        prompt=Decimal("3.00"),
        completion=Decimal("15.00"),
        cached_prompt=Decimal("0.30"),
        cache_write_prompt=Decimal("3.75"),
    )
    cost = cost_for(
        Usage(prompt_tokens=10_000, completion_tokens=200, cached_tokens=6000, cache_write_tokens=3000), price
    )
    assert cost.prompt == Decimal("0.0030000000")  # 1000 plain prompt tokens
    assert cost.cached_prompt == Decimal("0.0018000000")
    assert cost.cache_write_prompt == Decimal("0.0112500000")
    assert cost.completion == Decimal("0.0030000000")
    assert cost.total == Decimal("0.0190500000")


def test_cache_writes_cost_the_prompt_rate_when_no_cache_write_rate_is_set():
    cost = cost_for(Usage(prompt_tokens=1000, completion_tokens=0, cache_write_tokens=400), _price())
    assert (cost.prompt, cost.cache_write_prompt, cost.total) == (
        Decimal("0.0000900000"),
        Decimal("0.0000600000"),
        Decimal("0.0001500000"),
    )


def test_cache_writes_never_count_more_than_the_prompt_left_after_cache_reads():
    price = _price(cache_write_prompt=Decimal("1.00"))
    cost = cost_for(Usage(prompt_tokens=100, completion_tokens=0, cached_tokens=80, cache_write_tokens=50), price)
    assert cost.cache_write_prompt == Decimal("0.0000200000")  # 20 tokens, not 50
    assert cost.prompt == Decimal("0E-10")
