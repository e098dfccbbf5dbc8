from __future__ import annotations

import math
import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.test import APIRequestFactory

from accounts.authentication import ApiKeyAuthentication
from accounts.keys import KEY_PREFIX, key_hash
from accounts.models import Account, ApiKey
from accounts.principals import principal_for_secret, principal_from_key
from accounts.services import account_set_status, api_key_create, api_key_revoke
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


def _authenticate(secret: str | None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret is not None else {}
    request = APIRequestFactory().get("/v1/key", **headers)
    return ApiKeyAuthentication().authenticate(request)


def test_it_issues_keys_with_prefix_and_at_least_32_base62_characters():
    api_key, secret = api_key_create(account=AccountFactory())
    assert re.fullmatch(r"orb_live_[A-Za-z0-9]{40}", secret)
    assert api_key.prefix == secret[: len(KEY_PREFIX) + 6]


def test_keys_have_enough_entropy_and_never_repeat():
    account = AccountFactory()
    secrets_ = [api_key_create(account=account)[1][len(KEY_PREFIX) :] for _ in range(200)]
    assert len(set(secrets_)) == 200
    # Every base62 character shows up across 8000 draws; a biased or short alphabet would not.
    alphabet = set("".join(secrets_))
    assert len(alphabet) == 62
    assert 40 * math.log2(len(alphabet)) > 200


def test_it_stores_only_the_hash_and_prefix():
    api_key, secret = api_key_create(account=AccountFactory(), name="ci")
    assert api_key.key_hash == key_hash(secret)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey")
        rows = cursor.fetchall()
    flat = " ".join(str(value) for row in rows for value in row)
    assert secret not in flat
    assert secret[len(KEY_PREFIX) + 6 :] not in flat


def test_nothing_stored_in_the_database_authenticates():
    api_key, _ = api_key_create(account=AccountFactory())
    for stored in (api_key.key_hash, api_key.prefix, f"{KEY_PREFIX}{api_key.key_hash[:40]}"):
        assert principal_for_secret(stored) is None
        with pytest.raises(exceptions.AuthenticationFailed):
            _authenticate(stored)


def test_it_authenticates_a_valid_key():
    api_key, secret = api_key_create(account=AccountFactory(), rpm_limit=7)
    principal, _ = _authenticate(secret)
    assert principal.key_id == api_key.pk
    assert principal.account_id == api_key.account_id
    assert principal.rpm_limit == 7


def test_a_request_without_a_key_stays_anonymous():
    assert _authenticate(None) is None


@pytest.mark.parametrize("header", ["Bearer", "Basic abc", "Bearer orb_live_short", "Bearer sk-proj-123"])
def test_it_rejects_malformed_or_unknown_keys(header):
    request = APIRequestFactory().get("/v1/key", HTTP_AUTHORIZATION=header)
    with pytest.raises(exceptions.AuthenticationFailed) as exc:
        ApiKeyAuthentication().authenticate(request)
    assert exc.value.get_codes() == "invalid_api_key"


def test_it_rejects_a_revoked_key_at_once_in_this_process(django_capture_on_commit_callbacks):
    api_key, secret = api_key_create(account=AccountFactory())
    assert _authenticate(secret)
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=api_key)
    with pytest.raises(exceptions.AuthenticationFailed):
        _authenticate(secret)


def test_other_processes_refuse_a_revoked_key_within_the_cache_ttl(settings):
    settings.AUTH_CACHE_SECONDS = 0.3
    api_key, secret = api_key_create(account=AccountFactory())
    assert _authenticate(secret)
    # Another process revoked it: this process's cache was not told.
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at="2026-01-01T00:00:00Z")
    assert _authenticate(secret)
    time.sleep(0.35)
    with pytest.raises(exceptions.AuthenticationFailed):
        _authenticate(secret)


def test_it_refuses_keys_of_a_suspended_account():
    account = AccountFactory()
    _, secret = api_key_create(account=account)
    assert _authenticate(secret)
    account_set_status(account=account, status=Account.Status.SUSPENDED)
    with pytest.raises(exceptions.PermissionDenied) as exc:
        _authenticate(secret)
    assert exc.value.get_codes() == "account_suspended"
    account_set_status(account=account, status=Account.Status.ACTIVE)
    assert _authenticate(secret)


def test_the_hot_path_does_not_query_the_database_for_a_cached_key(django_assert_num_queries):
    _, secret = api_key_create(account=AccountFactory())
    _authenticate(secret)
    with django_assert_num_queries(0):
        for _ in range(50):
            _authenticate(secret)


def test_revoking_twice_keeps_the_first_revocation_time():
    api_key, _ = api_key_create(account=AccountFactory())
    first = api_key_revoke(api_key=api_key).revoked_at
    assert api_key_revoke(api_key=api_key).revoked_at == first


def test_a_new_key_gets_the_default_rpm(settings):
    settings.DEFAULT_KEY_RPM = 42
    api_key, _ = api_key_create(account=AccountFactory())
    assert api_key.rpm_limit == 42


@pytest.mark.parametrize("variant", ["plain", "limited", "revoked", "suspended"])
def test_the_principal_loaded_for_a_secret_equals_the_one_built_from_the_key(variant):
    account = AccountFactory()
    options = {}
    if variant == "limited":
        options = {
            "rpm_limit": 7,
            "spend_limit": Decimal("12.5"),
            "spend_period": ApiKey.SpendPeriod.MONTHLY,
            "expires_at": timezone.now() + timedelta(days=3),
            "allowed_models": ["openai/gpt-4o", "test/model"],
        }
    api_key, secret = api_key_create(account=account, **options)
    if variant == "revoked":
        api_key_revoke(api_key=api_key)
    if variant == "suspended":
        account_set_status(account=account, status=Account.Status.SUSPENDED)
    loaded = principal_for_secret(secret)
    assert loaded == principal_from_key(ApiKey.objects.select_related("account").get(pk=api_key.pk))
    assert type(loaded.spend_limit) is type(api_key.spend_limit)
