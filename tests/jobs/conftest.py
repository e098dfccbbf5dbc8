"""Fixtures for the background jobs: generations crafted straight in the database, channels, eager Celery."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Account, ApiKey
from accounts.services import api_key_create
from billing import alerts
from billing.models import LowBalanceAlert, Price
from billing.services import hold_place, hold_settle
from completions.models import Generation, Provider
from mlrouter.celery import app as celery_app
from tests.factories import PriceFactory


def make_generation(
    account: Account,
    *,
    status: str = Generation.Status.PENDING,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost: str | Decimal = "0",
    price: Price | None = None,
    provider: Provider | None = None,
    upstream_id: str = "",
    upstream_cost: str | None = None,
    finished_ago: timedelta | None = None,
) -> Generation:
    """Create a Generation row as the request path would have left it (no money moves here)."""
    price = price or PriceFactory()
    api_key = ApiKey.objects.filter(account=account).first() or api_key_create(account=account)[0]
    now = timezone.now()
    finished = status != Generation.Status.PENDING
    return Generation.objects.create(
        id=f"gen-{time.time_ns()}-{secrets.token_hex(6)}",
        account=account,
        api_key=api_key,
        model=price.model,
        price=price,
        provider=provider,
        upstream_id=upstream_id,
        status=status,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=Decimal(cost),
        upstream_cost=None if upstream_cost is None else Decimal(upstream_cost),
        started_at=now - (finished_ago or timedelta(0)) - timedelta(seconds=2),
        finished_at=now - (finished_ago or timedelta(0)) if finished else None,
    )


def expired_hold_for(generation: Generation, amount: str) -> None:
    """Place the generation's hold already past its expiry: a worker that died mid-request."""
    hold_place(account_id=generation.account_id, amount=Decimal(amount), reference=generation.pk, ttl_seconds=-60)


class FakeSender:
    """A channel sender that records what it sent and fails as told."""

    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[int, int]] = []
        self.failures = failures

    def __call__(self, account: Account, alert: LowBalanceAlert) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("telegram unreachable")
        self.sent.append((account.pk, alert.pk))


@pytest.fixture
def channels() -> Iterator[dict]:
    """Let a test register channels; the registry is restored afterwards."""
    saved = dict(alerts._senders)
    yield alerts._senders
    alerts._senders.clear()
    alerts._senders.update(saved)


@pytest.fixture
def telegram(channels) -> FakeSender:
    """A fake Telegram channel registered in place of the bot's."""
    sender = FakeSender()
    alerts.register_channel("telegram", sender)
    return sender


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Run tasks in-process for this test (settings loaded with REDIS_URL make them go to Redis)."""
    # The app reads Django settings under the CELERY_ namespace, so the override needs the namespaced key.
    saved = celery_app.conf.task_always_eager
    celery_app.conf.CELERY_TASK_ALWAYS_EAGER = True
    assert celery_app.conf.task_always_eager
    yield
    celery_app.conf.CELERY_TASK_ALWAYS_EAGER = saved


def charged_generation(account: Account, cost: str, *, hold: str = "0.50", **kwargs) -> Generation:
    """A generation finished the way the request path does it: hold placed, settled once, row completed."""
    generation = make_generation(account, **kwargs)
    hold_place(account_id=account.pk, amount=Decimal(hold), reference=generation.pk)
    hold_settle(reference=generation.pk, cost=Decimal(cost))
    Generation.objects.filter(pk=generation.pk).update(
        status=Generation.Status.COMPLETED, cost=Decimal(cost), finished_at=generation.started_at + timedelta(seconds=2)
    )
    generation.refresh_from_db()
    return generation


@pytest.fixture
def eager_retries(eager_celery) -> Iterator[None]:
    """Eager tasks whose retries run in-process too (a propagated Retry would end the eager run)."""
    saved = celery_app.conf.task_eager_propagates
    celery_app.conf.CELERY_TASK_EAGER_PROPAGATES = False
    yield
    celery_app.conf.CELERY_TASK_EAGER_PROPAGATES = saved
