"""The overview on an account's admin page: money, spend from the rollups, keys against their limits, links, buttons."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, ApiKey
from analytics.rollups import day_floor, rollups_refresh
from billing.models import LedgerEntry, LowBalanceAlert, TopUp
from billing.services import hold_place, ledger_credit
from completions.models import Generation
from tests.factories import UserFactory

from .helpers import catalog, generation

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    client.force_login(UserFactory(username="support-lead"))
    return client


@pytest.fixture
def customer(settings):
    settings.ANALYTICS_HOURS_PER_RUN = 24 * 45
    cat = catalog()
    acme = cat.accounts[0]
    now = timezone.now()
    today = day_floor(now) + (now - day_floor(now)) / 2
    ApiKey.objects.filter(pk=cat.keys[0].pk).update(spend_limit=Decimal("1.00"), spend_period="daily")
    generation(cat, today, cost="0.25", model=1)
    generation(cat, now - timedelta(days=3), cost="0.125")
    generation(cat, now - timedelta(days=20), key=1, cost="2.5")
    generation(cat, now - timedelta(days=40), cost="9")
    generation(cat, now - timedelta(minutes=1), key=2, cost="7")  # another account's
    ledger_credit(account=acme, amount=Decimal("20"), idempotency_key="wire-1", kind=LedgerEntry.Kind.TOPUP)
    hold_place(account_id=acme.pk, amount=Decimal("0.40"), reference="gen-in-flight")
    LowBalanceAlert.objects.create(
        account=acme, crossing="c1", channel="email", balance=Decimal("0.9"), threshold=Decimal("1")
    )
    TopUp.objects.create(
        account=acme, method=TopUp.Method.TELEGRAM_STARS, amount_usd=Decimal("1.30"), currency="XTR",
        amount_minor=100, payload="stars-1",
    )  # fmt: skip
    rollups_refresh()
    return cat


def _overview(client, account) -> str:
    response = client.get(reverse("admin:accounts_account_change", args=[account.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    return page[page.index('id="account-overview"') : page.index('id="account_form"')]


def test_it_shows_balance_held_available_spend_and_lifetime_topups(operator_client, customer):
    acme = Account.objects.get(pk=customer.accounts[0].pk)
    panel = _overview(operator_client, acme)

    assert 'id="overview-balance"><span class="money" title="$120.00">$120.00</span>' in panel
    assert 'id="overview-held"><span class="money" title="$0.40">$0.40</span>' in panel
    assert 'id="overview-available"><span class="money" title="$119.60">$119.60</span>' in panel
    spend = [part.split(">")[1].split("<")[0] for part in panel.split('class="value overview-spend">')[1:]]
    assert spend == ["$0.25", "$0.375", "$2.875"]  # today, 7 days, 30 days; not the 40-day-old one
    assert 'id="overview-topups"><span class="money" title="$120.00">$120.00</span>' in panel


def test_it_shows_the_last_request_top_models_and_each_keys_spend_against_its_limit(operator_client, customer):
    acme = customer.accounts[0]
    panel = _overview(operator_client, acme)

    last = acme.generations.order_by("-started_at").first()
    assert (
        reverse("admin:completions_generation_change", args=[last.pk]) in panel.split('id="overview-last-request"')[1]
    )
    top = panel.split("Top models, 30 days")[1].split("</table>")[0]
    assert top.index("openai/gpt-4o-mini") < top.index("anthropic/claude")  # $2.625 before $0.25
    keys = panel.split('id="overview-keys"')[1].split("</table>")[0]
    assert "25.0%" in keys  # $0.25 today of a $1.00 daily limit
    assert "no limit" in keys


def test_recent_generations_link_to_a_list_that_says_it_is_filtered(operator_client, customer):
    acme = customer.accounts[0]
    panel = _overview(operator_client, acme)
    rows = panel.split('id="overview-generations"')[1].split("</table>")[0]
    for generation_row in acme.generations.all():
        assert reverse("admin:completions_generation_change", args=[generation_row.pk]) in rows

    url = f"{reverse('admin:completions_generation_changelist')}?account__id__exact={acme.pk}"
    assert url.replace("&", "&amp;") in panel or url in panel
    listing = operator_client.get(url)
    page = listing.content.decode()
    assert listing.status_code == 200
    assert "Filtered list" in page and f"account: Acme Labs (#{acme.pk})" in page
    assert {g.pk for g in listing.context["cl"].result_list} == set(acme.generations.values_list("pk", flat=True))


def test_it_shows_alerts_and_payments_with_links_to_their_filtered_lists(operator_client, customer):
    acme = customer.accounts[0]
    panel = _overview(operator_client, acme)

    assert "$0.90" in panel.split('id="overview-alerts"')[1]
    assert "$1.30" in panel.split('id="overview-payments"')[1]
    for name in ("lowbalancealert", "topup"):
        url = f"{reverse(f'admin:billing_{name}_changelist')}?account__id__exact={acme.pk}"
        assert url in panel
        assert "Filtered list" in operator_client.get(url).content.decode()


def test_its_buttons_lead_to_top_up_adjust_issue_key_and_suspend(operator_client, customer):
    acme = customer.accounts[0]
    actions = _overview(operator_client, acme).split('id="overview-actions"')[1].split("</div>")[0]

    assert reverse("admin:accounts_account_topup", args=[acme.pk]) in actions
    assert reverse("admin:accounts_account_adjust", args=[acme.pk]) in actions
    assert f"{reverse('admin:accounts_apikey_add')}?account={acme.pk}" in actions
    assert 'value="suspend_selected"' in actions
    # The suspend button posts the list's own action for this one account: it asks for a reason first.
    post = {"action": "suspend_selected", "index": "0", "select_across": "0", "_selected_action": str(acme.pk)}
    page = operator_client.post(reverse("admin:accounts_account_changelist"), post)
    assert page.status_code == 200 and 'name="reason"' in page.content.decode()
    acme.refresh_from_db()
    assert acme.status == Account.Status.ACTIVE
    response = operator_client.post(
        reverse("admin:accounts_account_changelist"), {**post, "post": "yes", "reason": "chargeback"}
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.status == Account.Status.SUSPENDED
    assert 'value="reactivate_selected"' in _overview(operator_client, acme)


def test_a_read_only_operator_sees_the_figures_without_the_buttons(client, customer):
    viewer = UserFactory(username="viewer", is_superuser=False)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_account", "view_generation"]))
    client.force_login(viewer)
    panel = _overview(client, customer.accounts[0])

    actions = panel.split('id="overview-actions"')[1].split("</div>")[0]
    assert "Top up" not in actions and "Issue key" not in actions and "Suspend" not in actions
    assert "overview-spend" in panel


def test_the_overview_reads_generations_once_for_the_recent_ones(operator_client, customer):
    acme = customer.accounts[0]
    with CaptureQueriesContext(connection) as queries:
        _overview(operator_client, acme)

    reads = [q["sql"] for q in queries.captured_queries if f'FROM "{Generation._meta.db_table}"' in q["sql"]]
    assert len(reads) == 1
    assert f'"account_id" = {acme.pk}' in reads[0] and "LIMIT 10" in reads[0]
