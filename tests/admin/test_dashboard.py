"""The admin index opens with the operators' figures: the last 24 hours and what needs attention."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape

from billing.models import LowBalanceAlert
from billing.services import hold_place, ledger_credit
from completions.dashboard import dashboard_figures
from completions.models import Generation
from tests.factories import AccountFactory
from tests.jobs.conftest import charged_generation, make_generation


def _cell(html: str, cell_id: str) -> str:
    return re.search(rf'id="{cell_id}"[^>]*>(.*?)</div>', html, re.S).group(1).strip()


def test_the_dashboard_counts_the_last_day_and_the_open_problems(operator_client):
    account = AccountFactory(low_balance_threshold=Decimal("1.00"))
    ledger_credit(account=account, amount=Decimal("2.00"), idempotency_key="dash:fund")
    charged_generation(account, "0.25")
    make_generation(account, status=Generation.Status.FAILED)
    pending = make_generation(account)
    hold_place(account_id=account.pk, amount=Decimal("0.90"), reference=pending.pk, ttl_seconds=-5)
    LowBalanceAlert.objects.create(
        account=account, crossing="x", channel="email", status="failed", balance=Decimal(0), threshold=Decimal(1)
    )

    figures = dashboard_figures()
    assert (figures.requests, figures.failed, figures.charged, figures.credited) == (
        3,
        1,
        Decimal("0.25"),
        Decimal("2.00"),
    )
    assert (figures.open_holds, figures.held, figures.expired_holds) == (1, Decimal("0.90"), 1)
    # 2.00 - 0.25 = 1.75 balance, 0.90 held: 0.85 available, under the 1.00 threshold.
    assert (figures.accounts_below_threshold, figures.alerts_failed) == (1, 1)

    html = operator_client.get("/admin/").content.decode()
    assert _cell(html, "ops-requests") == "3"
    assert _cell(html, "ops-charged") == "$0.25"
    assert _cell(html, "ops-credited") == "$2.00"
    assert _cell(html, "ops-expired-holds") == "1"
    assert _cell(html, "ops-last-run") == "never run"


def _link(html: str, link_id: str) -> str:
    return unescape(re.search(rf'id="{link_id}" href="([^"]+)"', html).group(1))


def test_the_dashboards_attention_links_open_lists_filtered_to_what_they_count(operator_client):
    below = AccountFactory(low_balance_threshold=Decimal("5.00"))
    ledger_credit(account=below, amount=Decimal("1.00"), idempotency_key="dash:below")
    suspended_below = AccountFactory(low_balance_threshold=Decimal("5.00"), status="suspended")
    AccountFactory(low_balance_threshold=Decimal(0))
    above = AccountFactory(low_balance_threshold=Decimal("1.00"))
    ledger_credit(account=above, amount=Decimal("9.00"), idempotency_key="dash:above")
    expired = hold_place(account_id=above.pk, amount=Decimal("0.10"), reference="dash-expired", ttl_seconds=-5)
    hold_place(account_id=above.pk, amount=Decimal("0.10"), reference="dash-live")

    html = operator_client.get("/admin/").content.decode()
    assert _cell(html, "ops-below") == "1"
    assert _cell(html, "ops-expired-holds") == "1"

    accounts = operator_client.get(_link(html, "ops-below-link")).context["cl"].result_list
    assert [a.pk for a in accounts] == [below.pk]
    assert suspended_below.pk not in [a.pk for a in accounts]
    holds = operator_client.get(_link(html, "ops-expired-holds-link")).context["cl"].result_list
    assert [h.pk for h in holds] == [expired.pk]
