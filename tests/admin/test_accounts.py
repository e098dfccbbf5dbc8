"""Operators top up, adjust, suspend and edit accounts; balances move only through the ledger service."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages

from accounts.models import Account
from accounts.principals import principal_for_secret
from billing.admin import AccountAdmin
from billing.models import LedgerEntry
from billing.services import hold_place, ledger_credit
from tests.factories import AccountFactory, UserFactory, funded_account, key_for

from .helpers import admin_url, change_form_data, run_action

pytestmark = pytest.mark.django_db


def _open_form(client, account, view):
    response = client.get(admin_url(account, view, account.pk))
    assert response.status_code == 200
    return response.context["form"].initial["idempotency_key"]


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_topup_credits_once_when_the_same_form_is_posted_twice(operator_client, operator):
    account = funded_account("10.00")
    key = _open_form(operator_client, account, "topup")
    assert key.startswith("admin-topup:")
    data = {"amount": "12.5", "memo": "bank transfer 118", "idempotency_key": key}

    first = operator_client.post(admin_url(account, "topup", account.pk), data)
    second = operator_client.post(admin_url(account, "topup", account.pk), data)

    assert first.status_code == second.status_code == 302
    assert first["Location"] == admin_url(account, "change", account.pk)
    entry = LedgerEntry.objects.get(account=account, kind=LedgerEntry.Kind.TOPUP, idempotency_key=key)
    assert entry.amount == Decimal("12.5000000000")
    assert entry.created_by == operator
    assert entry.memo == "bank transfer 118"
    account.refresh_from_db()
    assert account.balance == Decimal("22.5000000000")
    assert LedgerEntry.objects.filter(account=account).count() == 2
    log = LogEntry.objects.get(object_id=str(account.pk), user=operator)
    assert log.get_change_message() == f"Top-up of $12.50 (ledger entry #{entry.pk}): bank transfer 118"
    assert "nothing was moved again" in _messages(second)[-1]


def test_each_opened_topup_form_gets_its_own_idempotency_key(operator_client):
    account = AccountFactory()
    assert _open_form(operator_client, account, "topup") != _open_form(operator_client, account, "topup")


@pytest.mark.parametrize("amount", ["0", "-5"])
def test_topup_refuses_a_non_positive_amount_on_the_form(operator_client, amount):
    account = funded_account("10.00")
    key = _open_form(operator_client, account, "topup")
    response = operator_client.post(
        admin_url(account, "topup", account.pk), {"amount": amount, "memo": "oops", "idempotency_key": key}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["amount"] == ["A top-up must be a positive amount."]
    assert LedgerEntry.objects.filter(account=account).count() == 1


def test_topup_needs_a_memo(operator_client):
    account = AccountFactory()
    key = _open_form(operator_client, account, "topup")
    response = operator_client.post(
        admin_url(account, "topup", account.pk), {"amount": "5", "memo": "  ", "idempotency_key": key}
    )
    assert response.status_code == 200
    assert "memo" in response.context["form"].errors
    assert not LedgerEntry.objects.filter(account=account).exists()


def test_adjust_takes_a_signed_amount_and_records_who_and_why(operator_client, operator):
    account = funded_account("10.00")
    key = _open_form(operator_client, account, "adjust")
    response = operator_client.post(
        admin_url(account, "adjust", account.pk),
        {"amount": "-2.25", "memo": "duplicate top-up", "idempotency_key": key},
    )
    assert response.status_code == 302
    entry = LedgerEntry.objects.get(idempotency_key=key)
    assert entry.kind == LedgerEntry.Kind.ADJUSTMENT
    assert (entry.amount, entry.created_by) == (Decimal("-2.2500000000"), operator)
    account.refresh_from_db()
    assert account.balance == Decimal("7.7500000000")
    log = LogEntry.objects.get(object_id=str(account.pk))
    assert log.get_change_message() == f"Adjustment of -$2.25 (ledger entry #{entry.pk}): duplicate top-up"


def test_adjust_refuses_to_take_available_below_zero(operator_client):
    account = funded_account("10.00")
    hold_place(account_id=account.pk, amount=Decimal("4"), reference="gen-in-flight")
    key = _open_form(operator_client, account, "adjust")
    response = operator_client.post(
        admin_url(account, "adjust", account.pk), {"amount": "-7", "memo": "chargeback", "idempotency_key": key}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["amount"] == ["The available balance is $6.00; it cannot go below $0."]
    account.refresh_from_db()
    assert account.balance == Decimal("10.0000000000")
    assert not LedgerEntry.objects.filter(idempotency_key=key).exists()
    assert not LogEntry.objects.exists()


def test_adjust_refuses_zero(operator_client):
    account = funded_account("10.00")
    key = _open_form(operator_client, account, "adjust")
    response = operator_client.post(
        admin_url(account, "adjust", account.pk), {"amount": "0", "memo": "nothing", "idempotency_key": key}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["amount"] == ["An adjustment of zero changes nothing."]


def test_a_key_reused_with_another_amount_is_refused_on_the_form(operator_client):
    account = funded_account("10.00")
    key = _open_form(operator_client, account, "topup")
    url = admin_url(account, "topup", account.pk)
    operator_client.post(url, {"amount": "5", "memo": "first", "idempotency_key": key})
    response = operator_client.post(url, {"amount": "6", "memo": "edited after submit", "idempotency_key": key})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "This form was already submitted with other values; open it again."
    ]
    account.refresh_from_db()
    assert account.balance == Decimal("15.0000000000")


def test_a_forged_idempotency_key_is_refused(operator_client):
    account = funded_account("10.00")
    response = operator_client.post(
        admin_url(account, "topup", account.pk),
        {"amount": "5", "memo": "replay", "idempotency_key": f"test-fund:{account.pk}"},
    )
    assert response.status_code == 200
    assert "idempotency_key" in response.context["form"].errors
    account.refresh_from_db()
    assert account.balance == Decimal("10.0000000000")


def test_topping_up_and_adjusting_each_need_their_own_permission(client):
    clerk = UserFactory(username="clerk", is_superuser=False)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_account", "change_account"]))
    client.force_login(clerk)
    account = funded_account("10.00")
    assert client.get(admin_url(account, "topup", account.pk)).status_code == 403
    assert client.post(admin_url(account, "adjust", account.pk), {"amount": "-1"}).status_code == 403
    change_page = client.get(admin_url(account, "change", account.pk)).content.decode()
    assert admin_url(account, "topup", account.pk) not in change_page

    clerk.user_permissions.add(Permission.objects.get(codename="topup_account"))
    client.force_login(clerk)
    assert client.get(admin_url(account, "topup", account.pk)).status_code == 200
    assert client.get(admin_url(account, "adjust", account.pk)).status_code == 403

    clerk.user_permissions.add(Permission.objects.get(codename="adjust_balance"))
    client.force_login(clerk)
    assert client.get(admin_url(account, "adjust", account.pk)).status_code == 200


def test_the_change_page_links_to_top_up_and_adjust(operator_client):
    account = AccountFactory()
    html = operator_client.get(admin_url(account, "change", account.pk)).content.decode()
    assert f'href="{admin_url(account, "topup", account.pk)}"' in html
    assert f'href="{admin_url(account, "adjust", account.pk)}"' in html


def test_the_topup_action_opens_the_form_for_one_selected_account(operator_client):
    account, other = AccountFactory(), AccountFactory()
    response = run_action(operator_client, Account, "topup_selected", [account])
    assert response.status_code == 302
    assert response["Location"] == admin_url(account, "topup", account.pk)

    response = run_action(operator_client, Account, "adjust_selected", [account, other])
    assert response.status_code == 302
    assert response["Location"] == admin_url(Account, "changelist")
    assert _messages(response) == ["Select exactly one account: money is moved one account at a time."]


def test_suspending_an_account_stops_its_keys_at_once(operator_client, operator):
    account = funded_account("10.00")
    secret = key_for(account)
    assert principal_for_secret(secret).account_active is True

    confirmation = run_action(operator_client, Account, "suspend_selected", [account])
    assert confirmation.status_code == 200
    assert principal_for_secret(secret).account_active is True
    run_action(operator_client, Account, "suspend_selected", [account], post="yes", reason="chargeback")

    account.refresh_from_db()
    assert account.status == Account.Status.SUSPENDED
    assert principal_for_secret(secret).account_active is False
    message = LogEntry.objects.get(object_id=str(account.pk)).get_change_message()
    assert message == "Suspended the account: chargeback"

    run_action(operator_client, Account, "reactivate_selected", [account], post="yes", reason="resolved")
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE
    assert principal_for_secret(secret).account_active is True


def test_the_status_is_not_a_form_field_suspending_asks_for_a_reason(operator_client):
    account = funded_account("10.00")
    secret = key_for(account)
    page = operator_client.get(admin_url(account, "change", account.pk))
    assert "Suspend…" in page.content.decode()
    data = change_form_data(page, status="suspended")
    response = operator_client.post(admin_url(account, "change", account.pk), data)
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE
    assert principal_for_secret(secret).account_active is True


def test_balance_and_held_cannot_be_edited_on_the_form(operator_client):
    account = funded_account("10.00")
    page = operator_client.get(admin_url(account, "change", account.pk))
    data = change_form_data(page, name="Renamed", balance="1000", held="5")
    assert operator_client.post(admin_url(account, "change", account.pk), data).status_code == 302
    account.refresh_from_db()
    assert (account.name, account.balance, account.held) == ("Renamed", Decimal("10.0000000000"), Decimal(0))


def test_saving_the_form_keeps_a_balance_that_moved_meanwhile(operator_client, monkeypatch):
    account = funded_account("10.00")
    page = operator_client.get(admin_url(account, "change", account.pk))
    read = AccountAdmin.get_object

    def read_then_a_payment_lands(self, request, object_id, from_field=None):
        stale = read(self, request, object_id, from_field)
        ledger_credit(account=stale, amount=Decimal("5"), idempotency_key="meanwhile")
        return stale

    monkeypatch.setattr(AccountAdmin, "get_object", read_then_a_payment_lands)
    response = operator_client.post(admin_url(account, "change", account.pk), change_form_data(page, name="Renamed"))
    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.name, account.balance) == ("Renamed", Decimal("15.0000000000"))


def test_accounts_cannot_be_deleted(operator_client):
    account = AccountFactory()
    assert operator_client.post(admin_url(account, "delete", account.pk), {"post": "yes"}).status_code == 403
    assert Account.objects.filter(pk=account.pk).exists()


def test_the_list_shows_money_in_dollars(operator_client):
    account = funded_account("12.5", name="Dollar Co")
    hold_place(account_id=account.pk, amount=Decimal("0.0000005"), reference="gen-tiny")
    html = operator_client.get(admin_url(Account, "changelist")).content.decode()
    assert "$12.50" in html
    assert "$0.0000005" in html
    assert "$12.4999995" in html


@pytest.mark.parametrize("term", ["@acme_bot_user", "acme_bot", "-100200300", "acme@example.org"])
def test_search_finds_an_account_by_telegram_or_email(operator_client, term):
    wanted = AccountFactory(email="acme@example.org", telegram_username="acme_bot_user", telegram_chat_id=-100200300)
    AccountFactory(name="Someone else")
    response = operator_client.get(admin_url(Account, "changelist"), {"q": term})
    assert [a.pk for a in response.context["cl"].result_list] == [wanted.pk]


def test_search_by_number_finds_the_account_with_that_id(operator_client):
    accounts = [AccountFactory() for _ in range(3)]
    response = operator_client.get(admin_url(Account, "changelist"), {"q": f"#{accounts[1].pk}"})
    assert [a.pk for a in response.context["cl"].result_list] == [accounts[1].pk]


def test_the_change_page_shows_the_last_twenty_ledger_entries(operator_client):
    account = AccountFactory()
    entries = [
        ledger_credit(account=account, amount=Decimal("1"), idempotency_key=f"t:{n}", memo=f"credit {n}")
        for n in range(25)
    ]
    html = operator_client.get(admin_url(account, "change", account.pk)).content.decode()
    shown = [e for e in entries if f'href="{admin_url(e, "change", e.pk)}"' in html]
    assert shown == entries[5:]


def test_the_low_balance_filter_lists_accounts_below_their_threshold(operator_client):
    low = funded_account("0.50")
    funded_account("5.00")
    response = operator_client.get(admin_url(Account, "changelist"), {"low": "yes"})
    assert [a.pk for a in response.context["cl"].result_list] == [low.pk]


def test_the_list_sorts_by_available_balance(operator_client):
    rich, poor = funded_account("50.00"), funded_account("5.00")
    hold_place(account_id=rich.pk, amount=Decimal("49"), reference="gen-big")
    available_column = 6  # after the action checkbox, id, name, status, balance and held
    response = operator_client.get(admin_url(Account, "changelist"), {"o": str(available_column)})
    assert [a.pk for a in response.context["cl"].result_list] == [rich.pk, poor.pk]


def test_an_operator_adds_an_account_with_a_zero_balance(operator_client):
    response = operator_client.post(
        admin_url(Account, "add"),
        {"name": "New Co", "email": "ops@new.co", "language": "en", "low_balance_threshold": "2.5"},
    )
    assert response.status_code == 302
    account = Account.objects.get(name="New Co")
    assert (account.balance, account.low_balance_threshold, account.status) == (
        Decimal("0"),
        Decimal("2.5000000000"),
        Account.Status.ACTIVE,
    )
