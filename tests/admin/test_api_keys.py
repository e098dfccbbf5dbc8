"""Keys are issued through the service, their secret shown once, and revoked rather than deleted."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client

from accounts.admin import ApiKeyAdmin
from accounts.keys import key_hash
from accounts.models import ApiKey
from accounts.principals import principal_for_secret
from accounts.services import api_key_revoke
from tests.factories import AccountFactory, PriceFactory, RouteFactory, UserFactory, key_for

from .helpers import admin_url, change_form_data, run_action

pytestmark = pytest.mark.django_db


def _every_stored_text() -> str:
    """Every row of every table as text, sessions decoded: where a leaked secret would be."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')
            chunks.extend(row[0] for row in cursor.fetchall())
    chunks.extend(str(session.get_decoded()) for session in Session.objects.all())
    return "\n".join(chunks)


def _issue(client, account, **fields):
    form = client.get(admin_url(ApiKey, "add")).context["adminform"].form
    data = {
        "account": account.pk,
        "name": "prod",
        "rpm_limit": "120",
        "spend_period": "none",
        "count": "1",
        "issue_token": form.initial["issue_token"],
        **fields,
    }
    return client.post(admin_url(ApiKey, "add"), data)


def _secrets(response) -> list[str]:
    return [secret for _, secret in response.context["issued"] if secret]


def test_adding_a_key_shows_the_secret_once_and_stores_only_its_hash(operator_client):
    account = AccountFactory()
    posted = _issue(operator_client, account, spend_limit="25", spend_period="monthly")

    # Post/redirect/get: the secret is on the page the redirect leads to, not in the POST's own answer.
    assert posted.status_code == 302
    assert ApiKey.objects.count() == 1
    response = operator_client.get(posted["Location"])
    assert response.status_code == 200
    assert response.templates[0].name == "admin/accounts/apikey/issued.html"
    assert "no-store" in response["Cache-Control"]
    [secret] = _secrets(response)
    assert secret in response.content.decode()
    assert secret not in posted["Location"]
    api_key = ApiKey.objects.get(account=account)
    assert api_key.key_hash == key_hash(secret)
    assert (api_key.name, api_key.rpm_limit, api_key.spend_limit, api_key.spend_period) == (
        "prod",
        120,
        Decimal("25.0000000000"),
        "monthly",
    )
    assert secret not in _every_stored_text()
    assert not any(secret in str(m) for m in get_messages(response.wsgi_request))
    principal = principal_for_secret(secret)
    assert (principal.key_id, principal.account_id, principal.rpm_limit) == (api_key.pk, account.pk, 120)

    change_page = operator_client.get(admin_url(api_key, "change", api_key.pk)).content.decode()
    assert secret not in change_page
    assert api_key.key_hash not in change_page
    assert LogEntry.objects.get(object_id=str(api_key.pk)).is_addition()


def test_reloading_the_issued_page_never_shows_the_secret_again_nor_issues_a_key(operator_client):
    account = AccountFactory()
    posted = _issue(operator_client, account)
    [secret] = _secrets(operator_client.get(posted["Location"]))

    again = operator_client.get(posted["Location"])
    assert again.status_code == 200
    assert secret not in again.content.decode()
    assert "shown once and cannot be shown again" in again.content.decode()
    assert [key.pk for key, _ in again.context["issued"]] == [ApiKey.objects.get().pk]
    assert ApiKey.objects.count() == 1


def test_resending_the_same_add_form_issues_no_second_key(operator_client):
    account = AccountFactory()
    form = operator_client.get(admin_url(ApiKey, "add")).context["adminform"].form
    token = form.initial["issue_token"]
    first = _issue(operator_client, account, issue_token=token)
    resent = _issue(operator_client, account, issue_token=token)

    assert resent.status_code == 302
    assert resent["Location"] == first["Location"]
    assert ApiKey.objects.count() == 1
    assert LogEntry.objects.count() == 1
    assert len(_secrets(operator_client.get(first["Location"]))) == 1


def test_another_operator_cannot_open_the_issued_page(operator_client):
    posted = _issue(operator_client, AccountFactory())
    client = Client()
    client.force_login(UserFactory(username="other"))
    response = client.get(posted["Location"])
    assert response.status_code == 302
    assert response["Location"] == admin_url(ApiKey, "changelist")
    assert len(_secrets(operator_client.get(posted["Location"]))) == 1


def test_several_keys_are_issued_at_once_and_each_secret_shown_once(operator_client):
    account = AccountFactory()
    posted = _issue(operator_client, account, count="3", name="batch")
    page = operator_client.get(posted["Location"])

    secrets = _secrets(page)
    keys = list(ApiKey.objects.filter(account=account).order_by("pk"))
    assert len(secrets) == len(set(secrets)) == len(keys) == 3
    assert [key.key_hash for key in keys] == [key_hash(secret) for secret in secrets]
    assert {key.name for key in keys} == {"batch"}
    assert LogEntry.objects.filter(content_type__model="apikey").count() == 3
    html = operator_client.get(posted["Location"]).content.decode()
    assert not any(secret in html for secret in secrets)


def test_a_new_key_cannot_expire_in_the_past(operator_client):
    response = _issue(operator_client, AccountFactory(), expires_at_0="2000-01-01", expires_at_1="00:00:00")
    assert response.status_code == 200
    assert "expires_at" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


def test_an_issued_key_carries_its_expiry_and_allowed_models(operator_client):
    route = RouteFactory()
    PriceFactory(model=route.model)
    posted = _issue(
        operator_client,
        AccountFactory(),
        expires_at_0="2099-01-01",
        expires_at_1="12:00:00",
        allowed_models=[route.model.public_id],
    )
    assert posted.status_code == 302
    api_key = ApiKey.objects.get()
    assert api_key.allowed_models == [route.model.public_id]
    assert api_key.expires_at.year == 2099
    [secret] = _secrets(operator_client.get(posted["Location"]))
    principal = principal_for_secret(secret)
    assert principal.allowed_models == {route.model.public_id}
    assert principal.expires_at == api_key.expires_at


def test_the_key_hash_is_never_shown(operator_client):
    key_for(AccountFactory())
    api_key = ApiKey.objects.get()
    for url in (admin_url(ApiKey, "changelist"), admin_url(api_key, "change", api_key.pk)):
        assert api_key.key_hash not in operator_client.get(url).content.decode()


def test_a_new_key_starts_with_the_default_rpm(operator_client, settings):
    settings.DEFAULT_KEY_RPM = 77
    response = operator_client.get(admin_url(ApiKey, "add"))
    assert response.context["adminform"].form.initial["rpm_limit"] == 77


def test_the_revoke_action_sets_revoked_at_and_stops_the_key(operator_client, django_capture_on_commit_callbacks):
    account = AccountFactory()
    secret = key_for(account)
    api_key = ApiKey.objects.get()
    assert principal_for_secret(secret).revoked is False

    with django_capture_on_commit_callbacks(execute=True):
        confirmation = run_action(operator_client, ApiKey, "revoke_selected", [api_key])
        assert confirmation.status_code == 200
        assert principal_for_secret(secret).revoked is False
        response = run_action(operator_client, ApiKey, "revoke_selected", [api_key], post="yes")

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert principal_for_secret(secret).revoked is True
    assert LogEntry.objects.get(object_id=str(api_key.pk)).get_change_message() == "Revoked the key."


def test_revoking_again_keeps_the_first_revocation_time(operator_client):
    key_for(AccountFactory())
    api_key = api_key_revoke(api_key=ApiKey.objects.get())
    first = api_key.revoked_at
    run_action(operator_client, ApiKey, "revoke_selected", [api_key], post="yes")
    api_key.refresh_from_db()
    assert api_key.revoked_at == first


def test_keys_cannot_be_deleted(operator_client):
    key_for(AccountFactory())
    api_key = ApiKey.objects.get()
    assert operator_client.post(admin_url(api_key, "delete", api_key.pk), {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=api_key.pk).exists()


def test_the_change_form_edits_only_name_and_limits(operator_client, django_capture_on_commit_callbacks):
    account, other = AccountFactory(), AccountFactory()
    secret = key_for(account, name="old", rpm_limit=10)
    api_key = ApiKey.objects.get()
    assert principal_for_secret(secret).rpm_limit == 10
    page = operator_client.get(admin_url(api_key, "change", api_key.pk))
    assert set(page.context["adminform"].form.fields) == {
        "name",
        "rpm_limit",
        "spend_limit",
        "spend_period",
        "expires_at",
        "allowed_models",
    }

    data = change_form_data(page, name="new", rpm_limit="300", account=other.pk, prefix="orb_live_forged", key_hash="x")
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(admin_url(api_key, "change", api_key.pk), data)
    assert response.status_code == 302

    api_key.refresh_from_db()
    assert (api_key.name, api_key.rpm_limit, api_key.account_id) == ("new", 300, account.pk)
    assert api_key.key_hash == key_hash(secret)
    assert principal_for_secret(secret).rpm_limit == 300


def test_editing_a_key_does_not_undo_a_revocation_made_meanwhile(operator_client, monkeypatch):
    secret = key_for(AccountFactory())
    api_key = ApiKey.objects.get()
    page = operator_client.get(admin_url(api_key, "change", api_key.pk))
    read = ApiKeyAdmin.get_object

    def read_then_revoked_elsewhere(self, request, object_id, from_field=None):
        stale = read(self, request, object_id, from_field)
        api_key_revoke(api_key=ApiKey.objects.get(pk=stale.pk))
        return stale

    monkeypatch.setattr(ApiKeyAdmin, "get_object", read_then_revoked_elsewhere)
    operator_client.post(admin_url(api_key, "change", api_key.pk), change_form_data(page, name="renamed"))

    api_key.refresh_from_db()
    assert api_key.name == "renamed"
    assert api_key.revoked_at is not None
    assert principal_for_secret(secret).revoked is True


def test_a_revoked_key_is_view_only(operator_client):
    key_for(AccountFactory())
    api_key = api_key_revoke(api_key=ApiKey.objects.get())
    page = operator_client.get(admin_url(api_key, "change", api_key.pk))
    assert page.status_code == 200
    response = operator_client.post(admin_url(api_key, "change", api_key.pk), {"name": "x", "rpm_limit": "1"})
    assert response.status_code == 403


def test_the_revoked_filter_separates_active_and_revoked_keys(operator_client):
    account = AccountFactory()
    key_for(account, name="live")
    key_for(account, name="dead")
    api_key_revoke(api_key=ApiKey.objects.get(name="dead"))
    for value, name in (("no", "live"), ("yes", "dead")):
        response = operator_client.get(admin_url(ApiKey, "changelist"), {"revoked": value})
        assert [k.name for k in response.context["cl"].result_list] == [name]


def test_search_finds_keys_by_prefix_and_account_name(operator_client):
    wanted = AccountFactory(name="Zebra Analytics")
    key_for(wanted, name="zebra-prod")
    key_for(AccountFactory(name="Other"), name="other")
    api_key = ApiKey.objects.get(name="zebra-prod")
    for term in (api_key.prefix, "zebra analytics", str(wanted.pk)):
        response = operator_client.get(admin_url(ApiKey, "changelist"), {"q": term})
        assert [k.pk for k in response.context["cl"].result_list] == [api_key.pk], term
