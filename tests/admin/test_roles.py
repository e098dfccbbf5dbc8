"""The operator roles made by migration: what each group holds, and which admin actions each is offered."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.cache import SessionStore

from accounts.models import Account
from billing.models import LedgerEntry
from billing.roles import ADMINISTRATOR, FINANCE, SUPPORT, roles_grant_new
from tests.factories import UserFactory

from .helpers import admin_url, run_action

pytestmark = pytest.mark.django_db

FINANCE_ACTIONS = {
    ("accounts.Account", "topup_selected"),
    ("accounts.Account", "adjust_selected"),
    ("billing.Hold", "release_selected"),
    ("billing.TopUp", "refund_topups_action"),
    ("billing.ReconciliationRun", "run_reconciliation_now"),
    ("billing.ReconciliationFinding", "repair_findings"),
    ("billing.LowBalanceAlert", "retry_failed_alerts"),
}


def _member(group: str):
    user = UserFactory(username=group.split()[0].lower(), is_superuser=False)
    user.groups.add(Group.objects.get(name=group))
    return user


def _offered(rf, user) -> set[tuple[str, str]]:
    request = rf.post("/admin/")
    request.user = user
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return {
        (model._meta.label, name)
        for model, model_admin in admin.site._registry.items()
        for name in model_admin.get_actions(request)
    }


def _codenames(group: str) -> set[str]:
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=group).permissions.select_related("content_type")
    }


def test_support_can_only_view():
    held = _codenames(SUPPORT)
    assert held
    assert all(label.split(".")[1].startswith("view_") for label in held)
    assert {"billing.view_ledgerentry", "admin.view_logentry", "django_celery_beat.view_periodictask"} <= held


def test_finance_moves_money_but_does_not_suspend_revoke_or_schedule():
    held = _codenames(FINANCE)
    money = {
        "billing.topup_account",
        "billing.adjust_balance",
        "billing.refund_topup",
        "billing.release_hold",
        "billing.run_reconciliation",
        "billing.repair_finding",
        "billing.export_ledgerentry",
        "billing.export_topup",
        "accounts.export_account",
        "completions.export_generation",
    }
    assert money <= held
    assert _codenames(SUPPORT) <= held
    refused = {"accounts.suspend_account", "accounts.revoke_apikey", "django_celery_beat.change_periodictask"}
    assert not refused & held


def test_administrator_holds_every_permission():
    assert _codenames(ADMINISTRATOR) == {
        f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")
    }


def test_each_role_is_offered_only_the_actions_its_permissions_allow(rf, operator):
    assert _offered(rf, _member(SUPPORT)) == set()
    assert _offered(rf, _member(FINANCE)) == FINANCE_ACTIONS
    assert _offered(rf, _member(ADMINISTRATOR)) == _offered(rf, operator)


def test_finance_tops_up_but_cannot_suspend(client):
    account = Account.objects.create(name="Acme")
    client.force_login(_member(FINANCE))
    form = client.get(admin_url(account, "topup", account.pk)).context["form"]
    data = {"amount": "5", "memo": "wire 1234", "idempotency_key": form.initial["idempotency_key"]}
    assert client.post(admin_url(account, "topup", account.pk), data).status_code == 302
    assert LedgerEntry.objects.get(account=account).memo == "wire 1234"

    run_action(client, Account, "suspend_selected", [account], post="yes", reason="try")
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE


def test_support_sees_the_account_but_no_money_buttons(client):
    account = Account.objects.create(name="Acme")
    client.force_login(_member(SUPPORT))
    page = client.get(admin_url(account, "change", account.pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert admin_url(account, "topup", account.pk) not in html
    assert "Suspend…" not in html
    assert client.get(admin_url(account, "topup", account.pk)).status_code == 403


def test_a_permission_added_later_goes_to_the_administrator_after_migrate():
    later = Permission.objects.create(
        codename="later_thing", name="Can do a later thing", content_type=Permission.objects.first().content_type
    )
    roles_grant_new()
    assert later in Group.objects.get(name=ADMINISTRATOR).permissions.all()
    assert later not in Group.objects.get(name=FINANCE).permissions.all()


def test_a_view_permission_added_later_goes_to_every_role_after_migrate():
    later = Permission.objects.create(
        codename="view_later_thing", name="Can view a later thing", content_type=Permission.objects.first().content_type
    )
    roles_grant_new()
    for role in (ADMINISTRATOR, FINANCE, SUPPORT):
        assert later in Group.objects.get(name=role).permissions.all()
