"""Searching the big lists: every term is an index lookup (no LIKE on generations or the ledger), and finds its row."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiKey
from billing.models import LedgerEntry
from billing.services import ledger_credit
from completions.models import Generation
from tests.factories import AccountFactory, funded_account, key_for
from tests.jobs.conftest import make_generation

from .helpers import admin_url

pytestmark = pytest.mark.django_db


def _search(client, model, term: str) -> tuple[list, list[str]]:
    """The rows a search lists, and the SQL it ran against the model's table."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(admin_url(model, "changelist"), {"q": term})
    assert response.status_code == 200
    table = model._meta.db_table
    return list(response.context["cl"].result_list), [q["sql"] for q in queries if f'"{table}"' in q["sql"]]


@pytest.fixture
def two_customers():
    wanted = funded_account("5.00", name="Zebra Analytics", email="ops@zebra.test", telegram_username="zebra_ops")
    other = funded_account("5.00", name="Other Co", email="ops@other.test", telegram_username="other_ops")
    key_for(wanted, name="zebra")
    key_for(other, name="other")
    generations = {account.pk: make_generation(account) for account in (wanted, other)}
    Generation.objects.filter(pk=generations[wanted.pk].pk).update(request_id="req_0123456789abcdef")
    return wanted, other, generations[wanted.pk]


def test_a_generation_is_found_by_id_request_id_key_prefix_and_its_account(operator_client, two_customers):
    wanted, _, generation = two_customers
    prefix = ApiKey.objects.get(account=wanted).prefix
    Generation.objects.filter(pk=generation.pk).update(api_key=ApiKey.objects.get(account=wanted))
    for term in (
        generation.pk,
        "req_0123456789abcdef",
        prefix,
        str(wanted.pk),
        f"#{wanted.pk}",
        "ops@zebra.test",
        "@zebra_ops",
        "zebra anal",
    ):
        rows, sql = _search(operator_client, Generation, term)
        assert [g.pk for g in rows] == [generation.pk], term
        assert sql and not any("LIKE" in q.upper() for q in sql), (term, sql)


def test_a_ledger_entry_is_found_by_key_reference_and_account_without_like_on_the_ledger(
    operator_client, two_customers
):
    wanted, _, _ = two_customers
    entry = LedgerEntry.objects.get(account=wanted)
    for term in (entry.idempotency_key, str(wanted.pk), "ops@zebra.test", "@zebra_ops"):
        rows, sql = _search(operator_client, LedgerEntry, term)
        assert [e.pk for e in rows] == [entry.pk], term
        assert sql and not any("LIKE" in q.upper() for q in sql), (term, sql)


def test_a_memo_is_searched_among_credits_only(operator_client):
    account = AccountFactory()
    credit = ledger_credit(account=account, amount=Decimal("1"), idempotency_key="memo:1", memo="wire from Zebra")
    rows, sql = _search(operator_client, LedgerEntry, "zebra")
    assert [e.pk for e in rows] == [credit.pk]
    like = [q for q in sql if "LIKE" in q.upper()]
    assert like and all('NOT ("billing_ledgerentry"."kind" = \'charge\')' in q for q in like)


def test_a_search_on_a_big_list_counts_its_results_only(operator_client, two_customers):
    _, _, generation = two_customers
    with CaptureQueriesContext(connection) as queries:
        cl = operator_client.get(admin_url(Generation, "changelist"), {"q": generation.pk}).context["cl"]
    assert (cl.result_count, cl.show_full_result_count) == (1, False)
    # A result that fits on a page is counted by reading that page; never a count of the whole table.
    counts = [
        q["sql"] for q in queries if q["sql"].startswith("SELECT COUNT(*)") and "completions_generation" in q["sql"]
    ]
    assert counts == []
