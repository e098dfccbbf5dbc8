"""Every admin page opens for an operator, and none for an anonymous visitor."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import LedgerEntry
from billing.services import ledger_credit
from core.admin import BoundedCountPaginator, count_short
from tests.factories import AccountFactory

MY_APPS = {"accounts", "billing", "completions"}


def _registered():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _opens(client, url):
    """True when the page renders, after any redirect inside the admin (a singleton's list goes to its page)."""
    response = client.get(url, follow=True)
    return response.status_code == 200 and response.request["PATH_INFO"] != reverse("admin:login")


@pytest.mark.django_db
def test_every_changelist_change_and_add_page_renders_for_a_superuser(operator_client, operator, rf, one_of_everything):
    request = rf.get("/")
    request.user = operator
    opened_change_pages = set()
    for model, model_admin in _registered():
        assert _opens(operator_client, _url(model, "changelist")), model
        obj = model._default_manager.first()
        if obj is not None:
            assert _opens(operator_client, _url(model, "change", obj.pk)), model
            opened_change_pages.add(model._meta.label)
        if model_admin.has_add_permission(request):
            assert _opens(operator_client, _url(model, "add")), model
    ours = {model._meta.label for model, _ in _registered() if model._meta.app_label in MY_APPS}
    assert ours <= opened_change_pages


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_the_login_page(client, one_of_everything):
    for model, _ in _registered():
        response = client.get(_url(model, "changelist"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    account = one_of_everything["account"]
    for view in ("topup", "adjust"):
        response = client.get(_url(account, view, account.pk))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_the_admin_index_lists_the_operators_models(operator_client):
    html = operator_client.get(reverse("admin:index")).content.decode()
    for name in ("Accounts", "API keys", "Ledger entries", "Holds", "Generations", "Providers", "Prices"):
        assert name in html


@pytest.mark.django_db
def test_big_changelists_do_not_run_a_query_per_row(operator_client, django_assert_max_num_queries):
    for n in range(30):
        account = AccountFactory()
        ledger_credit(account=account, amount=Decimal(n + 1), idempotency_key=f"t:{n}")
    for model in ("billing_ledgerentry", "accounts_account", "accounts_apikey", "billing_hold"):
        with django_assert_max_num_queries(12):
            assert operator_client.get(reverse(f"admin:{model}_changelist")).status_code == 200


@pytest.mark.django_db
def test_the_ledger_paginator_stops_counting_at_its_cap_and_says_about_how_many(monkeypatch):
    account = AccountFactory()
    for n in range(5):
        ledger_credit(account=account, amount=Decimal(1), idempotency_key=f"cap:{n}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_ledgerentry")
    monkeypatch.setattr(BoundedCountPaginator, "cap", 3)
    paginator = BoundedCountPaginator(LedgerEntry.objects.all(), 2)
    # Past the cap: the table's estimate (pg_class.reltuples), not a count.
    assert paginator.count == 5
    assert (paginator.count_capped, paginator.count_text) == (True, "about 5")
    filtered = BoundedCountPaginator(LedgerEntry.objects.filter(kind="topup"), 2)
    assert filtered.count >= 3
    assert filtered.count_text.startswith("about ")
    exact = BoundedCountPaginator(LedgerEntry.objects.filter(amount__gt=100), 2)
    assert (exact.count, exact.count_capped, exact.count_text) == (0, False, "0")


@pytest.mark.django_db
def test_a_list_estimated_past_the_cap_is_not_counted_and_a_short_one_is_read(monkeypatch):
    account = AccountFactory()
    for n in range(5):
        ledger_credit(account=account, amount=Decimal(1), idempotency_key=f"estimate:{n}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_ledgerentry")
    monkeypatch.setattr(BoundedCountPaginator, "cap", 3)

    # Counting even `cap` rows of a common value reads a long way into a big table: the estimate is enough.
    with CaptureQueriesContext(connection) as queries:
        common = BoundedCountPaginator(LedgerEntry.objects.filter(kind="topup"), 2)
        assert common.count >= 3
    assert common.count_text.startswith("about ")
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"]]

    # A short one is read, a page at most, and counted exactly.
    short = BoundedCountPaginator(LedgerEntry.objects.filter(kind="topup", amount__gt=100).order_by("pk"), 2)
    assert (short.count, short.count_text, short.only_page) == (0, "0", [])


@pytest.mark.django_db
def test_a_big_list_that_fits_on_a_page_is_read_once(operator_client):
    account = AccountFactory()
    for n in range(3):
        ledger_credit(account=account, amount=Decimal(1), idempotency_key=f"once:{n}")
    AccountFactory()

    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(reverse("admin:billing_ledgerentry_changelist"), {"q": f"#{account.pk}"})
    cl = response.context["cl"]
    assert {entry.idempotency_key for entry in cl.result_list} == {f"once:{n}" for n in range(3)}
    assert cl.result_count == 3
    # Counted by reading its only page, which is then shown: not counted, then read again without a limit.
    reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and "billing_ledgerentry" in q["sql"]
    ]
    assert len(reads) == 1, reads


@pytest.mark.django_db
def test_a_capped_ledger_list_says_about_how_many_there_are(operator_client, monkeypatch):
    account = AccountFactory()
    for n in range(4):
        ledger_credit(account=account, amount=Decimal(1), idempotency_key=f"more:{n}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_ledgerentry")
    monkeypatch.setattr(BoundedCountPaginator, "cap", 3)
    html = operator_client.get(reverse("admin:billing_ledgerentry_changelist")).content.decode()
    assert '<span class="result-count">about 4</span> ledger entries' in html
    searched = operator_client.get(reverse("admin:billing_ledgerentry_changelist"), {"q": f"#{account.pk}"})
    assert "about 4 results" in searched.content.decode()


@pytest.mark.parametrize(
    ("n", "text"), [(950, "950"), (12_345, "12K"), (1_234_567, "1.2M"), (10_000_000, "10M"), (2_500_000_000, "2.5B")]
)
def test_estimates_are_shown_with_a_few_digits(n, text):
    assert count_short(n) == text
