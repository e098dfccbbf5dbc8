"""Operators release stuck holds through the service, after seeing what they release."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry

from billing.models import Hold
from billing.services import hold_place, hold_settle
from tests.factories import funded_account

from .helpers import admin_url, run_action

pytestmark = pytest.mark.django_db


def test_releasing_an_open_hold_restores_the_accounts_held_amount(operator_client):
    account = funded_account("10.00")
    hold = hold_place(account_id=account.pk, amount=Decimal("0.50"), reference="gen-stuck", ttl_seconds=-60)
    account.refresh_from_db()
    assert account.held == Decimal("0.5000000000")

    confirmation = run_action(operator_client, Hold, "release_selected", [hold])
    assert confirmation.status_code == 200
    assert "gen-stuck" in confirmation.content.decode()
    hold.refresh_from_db()
    assert hold.status == Hold.Status.OPEN

    response = run_action(operator_client, Hold, "release_selected", [hold], post="yes", reason="worker died")

    assert response.status_code == 302
    hold.refresh_from_db()
    account.refresh_from_db()
    assert (hold.status, hold.close_reason) == (Hold.Status.RELEASED, "released by ops in admin: worker died")
    assert account.held == Decimal("0")
    assert account.balance == Decimal("10.0000000000")
    log = LogEntry.objects.get(object_id=str(hold.pk))
    assert log.get_change_message() == "Released $0.50: released by ops in admin: worker died"


def test_the_release_action_leaves_closed_holds_alone(operator_client):
    account = funded_account("10.00")
    hold = hold_place(account_id=account.pk, amount=Decimal("0.50"), reference="gen-done")
    hold_settle(reference="gen-done", cost=Decimal("0.20"))

    run_action(operator_client, Hold, "release_selected", [hold], post="yes", reason="stuck")

    hold.refresh_from_db()
    account.refresh_from_db()
    assert hold.status == Hold.Status.SETTLED
    assert account.balance == Decimal("9.8000000000")
    assert not LogEntry.objects.exists()


def test_the_confirmation_warns_about_holds_that_have_not_expired(operator_client):
    account = funded_account("10.00")
    hold = hold_place(account_id=account.pk, amount=Decimal("0.50"), reference="gen-running")
    html = run_action(operator_client, Hold, "release_selected", [hold]).content.decode()
    assert "(not expired yet)" in html


def test_the_expired_but_open_filter_shows_only_stuck_holds(operator_client):
    account = funded_account("10.00")
    stuck = hold_place(account_id=account.pk, amount=Decimal("0.1"), reference="gen-old", ttl_seconds=-60)
    hold_place(account_id=account.pk, amount=Decimal("0.1"), reference="gen-new")
    settled = hold_place(account_id=account.pk, amount=Decimal("0.1"), reference="gen-closed", ttl_seconds=-60)
    hold_settle(reference=settled.reference, cost=Decimal("0.05"))
    response = operator_client.get(admin_url(Hold, "changelist"), {"expired": "yes"})
    assert [h.pk for h in response.context["cl"].result_list] == [stuck.pk]


def test_holds_cannot_be_edited_or_deleted(operator_client):
    account = funded_account("10.00")
    hold = hold_place(account_id=account.pk, amount=Decimal("0.50"), reference="gen-x")
    assert operator_client.post(admin_url(hold, "change", hold.pk), {"status": "released"}).status_code == 403
    assert operator_client.post(admin_url(hold, "delete", hold.pk), {"post": "yes"}).status_code == 403
    hold.refresh_from_db()
    assert hold.status == Hold.Status.OPEN
