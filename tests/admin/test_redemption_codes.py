"""Redemption codes: validated in the form, the model and the database; made in batches, listed and downloaded once."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from billing.models import RedemptionCode
from billing.redemptions import code_redeem
from tests.factories import AccountFactory, UserFactory

from .helpers import admin_url, change_form_data

pytestmark = pytest.mark.django_db

BAD = {
    "amount": {"amount": "-5"},
    "zero amount": {"amount": "0"},
    "uses": {"max_uses": "0"},
    "past expiry": {"expires_at_0": "2000-01-01", "expires_at_1": "00:00:00"},
}


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_the_add_form_refuses_a_code_that_cannot_work(operator_client, bad):
    data = {"code": "BROKEN", "amount": "5", "max_uses": "1", "active": "on", "memo": "", **bad}
    response = operator_client.post(admin_url(RedemptionCode, "add"), data)
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {next(iter(bad)).removesuffix("_0")}
    assert not RedemptionCode.objects.exists()


@pytest.mark.parametrize(
    "fields",
    [
        {"amount": Decimal("-5")},
        {"amount": Decimal(0)},
        {"max_uses": 0},
        {"expires_at": timezone.now() - timedelta(minutes=1)},
    ],
    ids=["negative", "zero", "no uses", "past expiry"],
)
def test_the_model_and_the_database_refuse_it_too(fields):
    code = RedemptionCode(code="BROKEN", **{"amount": Decimal("5"), "max_uses": 1, **fields})
    with pytest.raises(ValidationError) as refused:
        code.full_clean()
    assert set(refused.value.message_dict) == set(fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        RedemptionCode.objects.create(code="BROKEN", **{"amount": Decimal("5"), "max_uses": 1, **fields})


def test_an_existing_code_may_be_edited_after_its_expiry(operator_client):
    code = RedemptionCode.objects.create(code="OLD", amount=Decimal("1"), expires_at=timezone.now() + timedelta(days=1))
    RedemptionCode.objects.filter(pk=code.pk).update(created_at=timezone.now() - timedelta(days=9))
    RedemptionCode.objects.filter(pk=code.pk).update(expires_at=timezone.now() - timedelta(days=1))
    page = operator_client.get(admin_url(code, "change", code.pk))
    data = change_form_data(page, memo="now inactive", active=None)
    assert operator_client.post(admin_url(code, "change", code.pk), data).status_code == 302
    code.refresh_from_db()
    assert (code.active, code.memo) == (False, "now inactive")


def _batch_form(client) -> dict:
    token = client.get(admin_url(RedemptionCode, "batch")).context["form"].initial["batch_token"]
    return {
        "count": "25",
        "amount": "2.50",
        "max_uses": "3",
        "expires_at_0": "2099-06-30",
        "expires_at_1": "12:00:00",
        "prefix": "LAUNCH-",
        "memo": "launch week",
        "batch_token": token,
    }


def test_a_batch_makes_n_codes_and_its_csv_downloads_once(operator_client):
    data = _batch_form(operator_client)
    posted = operator_client.post(admin_url(RedemptionCode, "batch"), data)
    assert posted.status_code == 302

    codes = list(RedemptionCode.objects.order_by("pk"))
    assert len(codes) == len({c.code for c in codes}) == 25
    assert all(c.code.startswith("LAUNCH-") and len(c.code) == 19 for c in codes)
    assert {(c.amount, c.max_uses, c.memo, c.expires_at.year) for c in codes} == {
        (Decimal("2.5"), 3, "launch week", 2099)
    }
    assert LogEntry.objects.filter(object_id=str(codes[0].pk)).exists()

    page = operator_client.get(posted["Location"])
    assert [c.code for c in page.context["codes"]] == [c.code for c in codes]
    assert "25 codes of $2.50, 3 uses each" in page.content.decode()
    reloaded = operator_client.get(posted["Location"])
    assert reloaded.context["codes"] == []
    assert not any(c.code in reloaded.content.decode() for c in codes)

    download = operator_client.get(page.context["csv_url"])
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert [r["code"] for r in rows] == [c.code for c in codes]
    assert {(r["amount_usd"], r["max_uses"], r["memo"]) for r in rows} == {("2.5", "3", "launch week")}
    again = operator_client.get(page.context["csv_url"])
    assert again.status_code == 302
    assert not any(c.code in operator_client.get(posted["Location"]).content.decode() for c in codes)

    # A made code redeems like any other.
    assert code_redeem(code=codes[0].code, account=AccountFactory()).ledger_entry.amount == Decimal("2.5")


def test_a_resent_batch_form_makes_one_batch(operator_client):
    data = _batch_form(operator_client)
    first = operator_client.post(admin_url(RedemptionCode, "batch"), data)
    second = operator_client.post(admin_url(RedemptionCode, "batch"), data)
    assert second["Location"] == first["Location"]
    assert RedemptionCode.objects.count() == 25


@pytest.mark.parametrize(
    "bad", [{"amount": "-5"}, {"max_uses": "0"}, {"expires_at_0": "2001-01-01"}, {"count": "0"}, {"prefix": "a b"}]
)
def test_a_batch_form_refuses_codes_that_cannot_work(operator_client, bad):
    response = operator_client.post(admin_url(RedemptionCode, "batch"), {**_batch_form(operator_client), **bad})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not RedemptionCode.objects.exists()


def test_another_operator_cannot_see_or_download_a_batch(operator_client):
    posted = operator_client.post(admin_url(RedemptionCode, "batch"), _batch_form(operator_client))
    other = Client()
    other.force_login(UserFactory(username="other"))
    assert other.get(posted["Location"]).status_code == 302
    assert other.get(posted["Location"] + "csv/").status_code == 302
    assert len(operator_client.get(posted["Location"]).context["codes"]) == 25
