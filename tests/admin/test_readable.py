"""What operators read: labels name things, lists show money to six places at most, every top-up is listed,
a reconciliation run's page summarises its findings."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.models import (
    Hold,
    LedgerEntry,
    Price,
    ReconciliationFinding,
    ReconciliationRun,
    Redemption,
    RedemptionCode,
    TopUp,
)
from billing.services import hold_place, ledger_credit, route_cost_set
from core.usd import usd_short
from tests.factories import AccountFactory, ModelFactory, PriceFactory, RouteFactory, funded_account

from .helpers import admin_url

pytestmark = pytest.mark.django_db


def test_labels_name_the_model_and_show_rates_in_dollars():
    model = ModelFactory(public_id="acme/fast-1")
    price = PriceFactory(model=model, prompt=Decimal("1.25"), completion=Decimal("10"))
    assert str(Price.objects.get(pk=price.pk)).startswith("acme/fast-1: $1.25 / $10.00 per 1M from ")

    route = RouteFactory(model=model, upstream_model="fast")
    cost = route_cost_set(route_id=route.pk, prompt="0.10", completion="0.40")
    assert str(cost).startswith(f"acme/fast-1 → {route.provider.name}:fast: $0.10 / $0.40 per 1M from ")

    account = AccountFactory()
    entry = ledger_credit(account=account, amount=Decimal("5"), idempotency_key="label:1")
    assert str(LedgerEntry.objects.get(pk=entry.pk)) == f"top-up +$5.00 on #{account.pk}"
    hold = hold_place(account_id=account.pk, amount=Decimal("0.5"), reference="gen-label")
    assert str(Hold.objects.get(pk=hold.pk)) == "hold $0.50 for gen-label (open)"
    code = RedemptionCode.objects.create(code="HELLO", amount=Decimal("1"))
    promo = ledger_credit(account=account, amount=Decimal("1"), idempotency_key="label:2", kind="promo")
    redemption = Redemption.objects.create(code=code, account=account, ledger_entry=promo)
    assert str(redemption) == f"HELLO by #{account.pk}"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1.2500000000", "$1.25"),
        ("0E-10", "$0.00"),
        ("-0.0000061500", "-$0.000006"),
        ("0.0000198000", "$0.00002"),
        ("0.0000000500", "<$0.000001"),
        ("1234.5", "$1,234.50"),
    ],
)
def test_list_amounts_have_two_to_six_places(value, text):
    assert usd_short(Decimal(value)) == text


def test_lists_round_money_and_keep_every_digit_in_a_tooltip_while_the_detail_page_is_exact(operator_client):
    account = funded_account("1.2500000000")
    entry = LedgerEntry.objects.get(account=account)
    hold_place(account_id=account.pk, amount=Decimal("0.0000061234"), reference="gen-precise")

    ledger = operator_client.get(admin_url(LedgerEntry, "changelist")).content.decode()
    assert '<span title="$1.25">$1.25</span>' in ledger
    assert "1.2500000000" not in ledger
    holds = operator_client.get(admin_url(Hold, "changelist")).content.decode()
    assert '<span title="$0.0000061234">$0.000006</span>' in holds

    detail = operator_client.get(admin_url(entry, "change", entry.pk)).content.decode()
    assert "$1.25" in detail
    hold = Hold.objects.get(reference="gen-precise")
    assert "0.0000061234" in operator_client.get(admin_url(hold, "change", hold.pk)).content.decode()


def test_operator_top_ups_from_the_admin_and_the_cli_are_listed_under_top_ups(operator_client, operator):
    account = AccountFactory()
    form = operator_client.get(admin_url(account, "topup", account.pk)).context["form"]
    data = {"amount": "12.5", "memo": "wire 118", "idempotency_key": form.initial["idempotency_key"]}
    operator_client.post(admin_url(account, "topup", account.pk), data)
    operator_client.post(admin_url(account, "topup", account.pk), data)
    call_command("topup", str(account.pk), "3", "--idempotency-key", "inv-7", stdout=StringIO(), stderr=StringIO())
    call_command("topup", str(account.pk), "3", "--idempotency-key", "inv-7", stdout=StringIO(), stderr=StringIO())

    topups = TopUp.objects.filter(account=account).order_by("pk")
    assert [(t.method, t.status, t.amount_usd, t.currency) for t in topups] == [
        ("operator", "paid", Decimal("12.5"), "USD"),
        ("operator", "paid", Decimal("3"), "USD"),
    ]
    assert [t.ledger_entry.idempotency_key for t in topups] == [data["idempotency_key"], "inv-7"]
    assert topups[0].ledger_entry.created_by == operator
    listed = operator_client.get(admin_url(TopUp, "changelist")).context["cl"].result_list
    assert {t.pk for t in listed} == {t.pk for t in topups}


def test_a_run_page_shows_human_counts_and_the_first_findings_with_a_link_to_all(operator_client):
    account = AccountFactory()
    counts = {"lookback_hours": 24.0, "accounts_checked": 5000, "balance_mismatches": 0, "findings": 45}
    run = ReconciliationRun.objects.create(status="findings", counts=counts, finished_at=timezone.now())
    for n in range(45):
        ReconciliationFinding.objects.create(
            run=run, kind="stale_hold", account=account, reference=f"gen-{n:03}", detail=f"finding {n:03}"
        )

    html = operator_client.get(admin_url(run, "change", run.pk)).content.decode()

    assert "Accounts checked</th><td>5,000" in html
    assert "Lookback hours</th><td>24<" in html
    assert "accounts_checked" not in html
    assert "The first 20 of 45 findings." in html
    assert "finding 019" in html and "finding 020" not in html
    link = f"{admin_url(ReconciliationFinding, 'changelist')}?run__id__exact={run.pk}"
    assert link in html
    listed = operator_client.get(link, {"p": "1"}).context["cl"]
    assert listed.result_count == 45
