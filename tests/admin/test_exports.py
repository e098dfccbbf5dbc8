"""CSV exports: the list's filters and search apply, money is exact, rows are streamed from a server-side cursor."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.http import StreamingHttpResponse
from django.utils import timezone

from accounts.models import Account
from billing.admin import LedgerEntryAdmin
from billing.models import LedgerEntry, TopUp
from billing.services import ledger_adjust, ledger_credit
from completions.models import Generation
from tests.factories import UserFactory, funded_account

from .helpers import admin_url

pytestmark = pytest.mark.django_db


def _rows(response) -> list[dict[str, str]]:
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_ledger_export_applies_the_lists_filters_and_search(operator_client):
    acme = funded_account("10.00", name="Acme Labs")
    other = funded_account("3.00", name="Other Co")
    ledger_credit(account=acme, amount=Decimal("0.1234567891"), idempotency_key="t1", memo="=HYPERLINK(1)")
    ledger_adjust(account=acme, amount=Decimal("-0.002"), idempotency_key="t2", memo="fix")
    ledger_credit(account=other, amount=Decimal("1"), idempotency_key="t3", memo="other")

    rows = _rows(operator_client.get(admin_url(LedgerEntry, "export"), {"kind__exact": "topup", "q": "Acme"}))

    assert [(r["account"], r["kind"], r["amount_usd"]) for r in rows] == [
        ("Acme Labs", "topup", "0.1234567891"),
        ("Acme Labs", "topup", "10.0000000000"),
    ]
    assert rows[0]["memo"] == "'=HYPERLINK(1)"  # a formula is text in a spreadsheet
    everything = _rows(operator_client.get(admin_url(LedgerEntry, "export")))
    assert len(everything) == LedgerEntry.objects.count() == 5
    assert {r["amount_usd"] for r in everything if r["kind"] == "adjustment"} == {"-0.0020000000"}


def test_the_list_offers_the_export_with_its_current_filters(operator_client):
    page = operator_client.get(admin_url(LedgerEntry, "changelist"), {"kind__exact": "topup"}).content.decode()
    assert f'href="{admin_url(LedgerEntry, "export")}?kind__exact=topup"' in page


def test_the_export_reads_through_a_server_side_cursor_while_streaming(operator_client, monkeypatch):
    account = funded_account("1.00")
    for n in range(5):
        ledger_credit(account=account, amount=Decimal("0.01"), idempotency_key=f"s{n}")
    monkeypatch.setattr(LedgerEntryAdmin, "export_chunk_rows", 2)
    response = operator_client.get(admin_url(LedgerEntry, "export"))
    lines = iter(response.streaming_content)
    assert next(lines).startswith(b"id,created_at,")
    assert next(lines)  # the first row: the cursor is open and holds the rest
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_cursors WHERE name LIKE '_django_curs_%%'")
        assert cursor.fetchall() != []
    assert len(list(lines)) == 5  # the other 4 rows of the credits, and the funding entry


def test_generations_top_ups_and_accounts_export_exact_money(operator_client, one_of_everything):
    account = one_of_everything["account"]
    TopUp.objects.filter(account=account).update(status=TopUp.Status.PAID, paid_at=timezone.now())
    Account.objects.filter(pk=account.pk).update(low_balance_threshold=Decimal(0))

    generations = _rows(operator_client.get(admin_url(Generation, "export"), {"status__exact": "completed"}))
    assert [(g["id"], g["cost_usd"], g["prompt_tokens"]) for g in generations] == [
        ("gen-everything", "0.0000198000", "12")
    ]
    assert _rows(operator_client.get(admin_url(Generation, "export"), {"status__exact": "failed"})) == []

    topups = _rows(operator_client.get(admin_url(TopUp, "export"), {"status__exact": "paid"}))
    assert [(t["account_id"], t["amount_usd"], t["amount_minor"]) for t in topups] == [
        (str(account.pk), "1.3000000000", "100")
    ]

    accounts = _rows(operator_client.get(admin_url(Account, "export"), {"q": "@acme"}))
    assert [(a["name"], a["low_balance_threshold_usd"]) for a in accounts] == [("Acme Labs", "0.0000000000")]


def test_exporting_needs_the_export_permission(client):
    clerk = UserFactory(username="clerk", is_superuser=False)
    clerk.user_permissions.add(Permission.objects.get(codename="view_ledgerentry"))
    client.force_login(clerk)
    assert client.get(admin_url(LedgerEntry, "export")).status_code == 403
    assert "Export CSV" not in client.get(admin_url(LedgerEntry, "changelist")).content.decode()

    clerk.user_permissions.add(Permission.objects.get(codename="export_ledgerentry"))
    client.force_login(clerk)
    assert client.get(admin_url(LedgerEntry, "export")).status_code == 200
    assert "Export CSV" in client.get(admin_url(LedgerEntry, "changelist")).content.decode()
