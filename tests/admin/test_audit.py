"""The audit page: every operator action in one read-only list, filterable, searchable and linked."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from accounts.models import Account, ApiKey
from tests.factories import UserFactory, funded_account, key_for

from .helpers import admin_url, run_action

pytestmark = pytest.mark.django_db

AUDIT = reverse("admin:admin_logentry_changelist")


def _topup(client, account, memo):
    form = client.get(admin_url(account, "topup", account.pk)).context["form"]
    data = {"amount": "2.50", "memo": memo, "idempotency_key": form.initial["idempotency_key"]}
    assert client.post(admin_url(account, "topup", account.pk), data).status_code == 302


@pytest.fixture
def history(client, operator):
    """A top-up and a suspension by `ops`, a key revoked by `root`."""
    account = funded_account("10.00", name="Acme Labs")
    client.force_login(operator)
    _topup(client, account, "wire 7781")
    run_action(client, Account, "suspend_selected", [account], post="yes", reason="chargeback")
    root = UserFactory(username="root")
    client.force_login(root)
    key_for(account, name="ci")
    run_action(client, ApiKey, "revoke_selected", [ApiKey.objects.get()], post="yes", reason="leaked")
    return {"account": account, "root": root}


def _listed(client, **params) -> list[str]:
    response = client.get(AUDIT, params)
    assert response.status_code == 200
    return [entry.get_change_message() for entry in response.context["cl"].result_list]


def test_every_operator_action_is_listed_with_its_reason(client, history):
    entry = history["account"].ledger_entries.latest("id")
    assert _listed(client) == [
        "Revoked the key: leaked",
        "Suspended the account: chargeback",
        f"Top-up of $2.50 (ledger entry #{entry.pk}): wire 7781",
    ]


def test_the_list_filters_by_operator_object_and_action(client, operator, history):
    account = history["account"]
    assert len(_listed(client, user__id__exact=operator.pk)) == 2
    assert _listed(client, user__id__exact=history["root"].pk) == ["Revoked the key: leaked"]
    account_type = ContentType.objects.get_for_model(Account)
    assert len(_listed(client, content_type__id__exact=account_type.pk, object_id=str(account.pk))) == 2
    assert len(_listed(client, action_flag__exact=CHANGE)) == 3
    assert _listed(client, q="chargeback") == ["Suspended the account: chargeback"]
    assert len(_listed(client, q="Acme Labs")) == 2


def test_each_entry_links_to_its_object(client, history):
    html = client.get(AUDIT).content.decode()
    account = history["account"]
    assert f'href="{admin_url(account, "change", account.pk)}"' in html


def test_the_audit_log_cannot_be_added_to_edited_or_deleted(client, operator, history):
    entry = LogEntry.objects.latest("id")
    assert client.get(reverse("admin:admin_logentry_add")).status_code == 403
    assert client.post(admin_url(entry, "change", entry.pk), {"change_message": "nothing"}).status_code == 403
    assert client.post(admin_url(entry, "delete", entry.pk), {"post": "yes"}).status_code == 403
    assert LogEntry.objects.get(pk=entry.pk).change_message == entry.change_message
    assert client.get(admin_url(entry, "change", entry.pk)).status_code == 200
