from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin import AdminSite, ModelAdmin
from django.contrib.admin.models import LogEntry
from django.contrib.messages.storage.fallback import FallbackStorage
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory

from billing.admin import refund_topups_action
from billing.models import LedgerEntry, TopUp
from billing.selectors import ledger_sum
from billing.services import InsufficientFunds, hold_place, ledger_credit
from billing.topups import TopUpError, topup_complete, topup_refund, topup_start
from tests.factories import AccountFactory, UserFactory

from . import updates


def _paid_topup(account, *, usd: str = "5", stars: int = 385, charge: str = "stxPAID") -> TopUp:
    topup = topup_start(
        account=account, method="telegram_stars", amount_usd=Decimal(usd), currency="XTR", amount_minor=stars
    )
    return topup_complete(
        payload=topup.payload, currency="XTR", total_amount=stars, telegram_payment_charge_id=charge
    ).topup


@pytest.mark.django_db
def test_a_refund_returns_the_stars_and_debits_the_balance_once(fake_bot_api):
    operator = UserFactory()
    account = AccountFactory(telegram_chat_id=updates.USER_ID)
    ledger_credit(account=account, amount="1.25", idempotency_key="t:fund")
    topup = _paid_topup(account)

    refunded = topup_refund(topup=topup, created_by=operator)
    again = topup_refund(topup=topup, created_by=operator)

    call = fake_bot_api.last("refundStarPayment")
    assert (call.params["user_id"], call.params["telegram_payment_charge_id"]) == (str(updates.USER_ID), "stxPAID")
    assert len(fake_bot_api.called("refundStarPayment")) == 1
    assert (refunded.status, again.status) == ("refunded", "refunded")
    entry = LedgerEntry.objects.get(kind="refund")
    assert (entry.amount, entry.idempotency_key, entry.created_by) == (
        Decimal("-5"),
        "refund:telegram:stxPAID",
        operator,
    )
    assert entry.reference == f"topup:{topup.pk}"
    assert refunded.refund_entry == entry
    account.refresh_from_db()
    assert account.balance == Decimal("1.25") == ledger_sum(account)


@pytest.mark.django_db
def test_a_refund_is_refused_when_the_balance_no_longer_covers_it(fake_bot_api):
    account = AccountFactory(telegram_chat_id=updates.USER_ID)
    topup = _paid_topup(account)
    hold_place(account_id=account.pk, amount=Decimal("0.01"), reference="gen-open")
    with pytest.raises(InsufficientFunds):
        topup_refund(topup=topup, created_by=None)
    assert fake_bot_api.called("refundStarPayment") == []
    topup.refresh_from_db()
    assert topup.status == "paid"
    assert not LedgerEntry.objects.filter(kind="refund").exists()


@pytest.mark.django_db
def test_when_telegram_refuses_the_refund_nothing_changes(fake_bot_api):
    account = AccountFactory(telegram_chat_id=updates.USER_ID)
    topup = _paid_topup(account)
    fake_bot_api.fail("refundStarPayment", description="Bad Request: CHARGE_NOT_FOUND")
    with pytest.raises(TopUpError):
        topup_refund(topup=topup, created_by=None)
    topup.refresh_from_db()
    account.refresh_from_db()
    assert (topup.status, account.balance) == ("paid", Decimal(5))


@pytest.mark.django_db
def test_a_charge_telegram_already_refunded_gets_its_ledger_entry(fake_bot_api):
    account = AccountFactory(telegram_chat_id=updates.USER_ID)
    topup = _paid_topup(account)
    fake_bot_api.fail("refundStarPayment", description="Bad Request: CHARGE_ALREADY_REFUNDED")
    assert topup_refund(topup=topup, created_by=None).status == "refunded"
    account.refresh_from_db()
    assert account.balance == Decimal(0)


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["pending", "failed"])
def test_only_a_paid_topup_can_be_refunded(fake_bot_api, status):
    topup = topup_start(
        account=AccountFactory(), method="telegram_stars", amount_usd=Decimal(5), currency="XTR", amount_minor=385
    )
    TopUp.objects.filter(pk=topup.pk).update(status=status)
    with pytest.raises(TopUpError):
        topup_refund(topup=topup, created_by=None)
    assert fake_bot_api.called("refundStarPayment") == []


@pytest.mark.django_db
def test_a_provider_payment_is_not_refunded_through_the_bot(fake_bot_api):
    account = AccountFactory(telegram_chat_id=updates.USER_ID)
    pending = topup_start(
        account=account, method="telegram_provider", amount_usd=Decimal(5), currency="USD", amount_minor=500
    )
    topup = topup_complete(
        payload=pending.payload, currency="USD", total_amount=500, telegram_payment_charge_id="prov1"
    ).topup
    with pytest.raises(TopUpError, match="cannot be refunded from here"):
        topup_refund(topup=topup, created_by=None)
    assert fake_bot_api.called("refundStarPayment") == []


@pytest.mark.django_db
def test_the_admin_action_refunds_what_it_can_and_reports_the_rest(fake_bot_api):
    operator = UserFactory()
    rich = AccountFactory(telegram_chat_id=updates.USER_ID)
    spent = AccountFactory(telegram_chat_id=updates.USER_ID + 1)
    ok = _paid_topup(rich, charge="stxOK")
    refused = _paid_topup(spent, charge="stxSPENT")
    hold_place(account_id=spent.pk, amount=Decimal("4.99"), reference="gen-spent")
    selected = TopUp.objects.filter(pk__in=[ok.pk, refused.pk])
    confirmation = refund_topups_action(ModelAdmin(TopUp, AdminSite()), _request(operator), selected)
    assert confirmation.status_code == 200
    assert fake_bot_api.called("refundStarPayment") == []
    request = _request(operator, post="yes", reason="asked by the customer")

    refund_topups_action(ModelAdmin(TopUp, AdminSite()), request, selected)

    ok.refresh_from_db()
    refused.refresh_from_db()
    assert (ok.status, refused.status) == ("refunded", "paid")
    texts = [str(m) for m in request._messages]
    assert texts[0].startswith(f"Top-up #{refused.pk} not refunded: available balance 0.0100000000 USD does not cover")
    assert texts[1] == "Refunded 1 top-up(s)."
    log = LogEntry.objects.get()
    assert (log.object_id, log.user, log.change_message) == (
        str(ok.pk),
        operator,
        "Refunded 5.0000000000 USD (385 XTR): asked by the customer",
    )
    assert ok.refund_entry.memo == "Refund of Telegram payment 385 XTR: asked by the customer"


@pytest.mark.django_db
def test_the_admin_action_needs_the_refund_permission(fake_bot_api):
    topup = _paid_topup(AccountFactory(telegram_chat_id=updates.USER_ID))
    request = _request(UserFactory(username="viewer", is_superuser=False), post="yes", reason="x")
    with pytest.raises(PermissionDenied):
        refund_topups_action(ModelAdmin(TopUp, AdminSite()), request, TopUp.objects.all())
    topup.refresh_from_db()
    assert topup.status == "paid"
    assert fake_bot_api.called("refundStarPayment") == []


def _request(user, **data):
    request = RequestFactory().post("/admin/billing/topup/", data)
    request.user = user
    request.session = {}
    request._messages = FallbackStorage(request)
    return request
