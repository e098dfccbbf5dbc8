"""Rows for the analytics tests: a small catalog and generations written with chosen figures."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from accounts.models import Account, ApiKey
from billing.models import Price
from completions.models import Generation, Model, Provider
from tests.factories import PriceFactory, ProviderFactory, funded_account, key_for

_ids = itertools.count(1)


@dataclass
class Catalog:
    accounts: list[Account]
    keys: list[ApiKey]
    models: list[Model]
    prices: list[Price]
    providers: list[Provider]


def catalog() -> Catalog:
    """Two accounts (one key each, the first a second key), two models, two providers."""
    accounts = [funded_account("100.00", name="Acme Labs"), funded_account("50.00", name="Globex")]
    key_for(accounts[0], name="prod")
    key_for(accounts[0], name="staging")
    key_for(accounts[1], name="main")
    keys = list(ApiKey.objects.order_by("id"))
    prices = [PriceFactory(model__public_id="openai/gpt-4o-mini"), PriceFactory(model__public_id="anthropic/claude")]
    providers = [ProviderFactory(name="openai"), ProviderFactory(name="anthropic")]
    return Catalog(accounts, keys, [p.model for p in prices], prices, providers)


def generation(
    cat: Catalog,
    started_at: datetime,
    *,
    key: int = 0,
    model: int = 0,
    provider: int | None = 0,
    status: str = Generation.Status.COMPLETED,
    cost: str = "0.0100000000",
    upstream_cost: str | None = "0.0060000000",
    latency_ms: int | None = 420,
    surface: str = "chat",
    app: str = "",
    prompt_tokens: int = 100,
    completion_tokens: int = 50,
) -> Generation:
    api_key = cat.keys[key]
    finished = status != Generation.Status.PENDING
    upstream = Decimal(upstream_cost) if upstream_cost is not None else None
    return Generation.objects.create(
        id=f"gen-analytics-{next(_ids)}",
        account_id=api_key.account_id,
        api_key=api_key,
        model=cat.models[model],
        price=cat.prices[model],
        provider=cat.providers[provider] if provider is not None else None,
        surface=surface,
        app=app,
        status=status,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=Decimal(cost) if finished else Decimal(0),
        upstream_cost=upstream if finished else None,
        margin=Decimal(cost) - upstream if finished and upstream is not None else None,
        hold_amount=Decimal("0.05"),
        latency_ms=latency_ms if finished else None,
        started_at=started_at,
        finished_at=started_at + timedelta(seconds=1) if finished else None,
    )
