"""Fixtures for the admin tests: a logged-in operator and one row of every model the admin shows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from billing.models import (
    LedgerEntry,
    LowBalanceAlert,
    ReconciliationFinding,
    ReconciliationRun,
    Redemption,
    RedemptionCode,
    TopUp,
)
from billing.services import hold_place, ledger_credit, route_cost_set
from completions.models import Generation, StoredResponse
from tests.factories import PriceFactory, RouteFactory, UserFactory, funded_account, key_for


@pytest.fixture
def operator(db):
    return UserFactory(username="ops")


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def one_of_everything(db, operator):
    """Rows for every model registered in admin, made the way the application makes them."""
    account = funded_account("10.00", name="Acme Labs", telegram_username="acme", telegram_chat_id=4242)
    key_for(account, name="prod")
    api_key = ApiKey.objects.get(account=account)
    route = RouteFactory()
    price = PriceFactory(model=route.model)
    route_cost_set(route_id=route.pk, prompt="0.10", completion="0.40", created_by=operator)
    hold = hold_place(account_id=account.pk, amount=Decimal("0.50"), reference="gen-everything")
    Generation.objects.create(
        id="gen-everything",
        account=account,
        api_key=api_key,
        model=route.model,
        price=price,
        provider=route.provider,
        status=Generation.Status.COMPLETED,
        prompt_tokens=12,
        completion_tokens=30,
        usage_source=Generation.UsageSource.UPSTREAM,
        cost=Decimal("0.0000198000"),
        latency_ms=120,
        started_at=timezone.now(),
    )
    StoredResponse.objects.create(
        id="gen-everything",
        account=account,
        api_key=api_key,
        model=route.model.public_id,
        input_items=[
            {"id": "msg_1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
        ],
        output=[],
        body="{}",
        created_at=timezone.now(),
    )
    code = RedemptionCode.objects.create(code="WELCOME5", amount=Decimal("5"), created_by=operator)
    promo = ledger_credit(
        account=account, amount=Decimal("5"), idempotency_key="promo:WELCOME5:1", kind=LedgerEntry.Kind.PROMO
    )
    Redemption.objects.create(code=code, account=account, ledger_entry=promo)
    TopUp.objects.create(
        account=account,
        method=TopUp.Method.TELEGRAM_STARS,
        amount_usd=Decimal("1.30"),
        currency="XTR",
        amount_minor=100,
        payload="topup-everything",
    )
    LowBalanceAlert.objects.create(
        account=account,
        crossing="c1",
        channel=LowBalanceAlert.Channel.TELEGRAM,
        balance=Decimal("0.90"),
        threshold=Decimal("1.00"),
    )
    run = ReconciliationRun.objects.create(status=ReconciliationRun.Status.FINDINGS, finished_at=timezone.now())
    ReconciliationFinding.objects.create(
        run=run, kind="stale_hold", account=account, reference=hold.reference, detail="hold past its expiry"
    )
    return {"account": account, "api_key": api_key, "hold": hold, "route": route, "price": price}
