"""The analytics page and the account overview in a real headless Chromium: the charts are drawn by Chart.js."""

from __future__ import annotations

import shutil
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.rollups import rollups_refresh
from billing.services import ledger_adjust
from completions.models import Generation
from tests.admin.test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import UserFactory

from .helpers import catalog, generation

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")

CHARTS = ("chart-usage", "chart-breakdown", "chart-latency", "chart-ledger")


@pytest.fixture
def week_of_usage(transactional_db, settings):
    settings.ANALYTICS_HOURS_PER_RUN = 7 * 24
    UserFactory(username="browser-analyst")
    cat = catalog()
    now = timezone.now()
    for hours in range(0, 7 * 24, 5):
        generation(cat, now - timedelta(hours=hours), key=hours % 3, model=hours % 2, provider=hours % 2,
                   cost=f"0.{hours % 9 + 1}25", latency_ms=200 + 37 * hours,
                   status=Generation.Status.FAILED if hours % 17 == 0 else Generation.Status.COMPLETED)  # fmt: skip
    ledger_adjust(account=cat.accounts[1], amount=Decimal("-4"), idempotency_key="browser-refund", memo="refund")
    rollups_refresh()
    return cat


def _note(errors: list[str], message) -> None:
    # The admin has no favicon; that 404 is not this page's.
    if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
        errors.append(f"{message.text} at {message.location.get('url')}")


def test_the_analytics_page_draws_its_charts_in_chromium(live_server, week_of_usage):
    SCREENSHOTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(locale="en-US", viewport={"width": 1440, "height": 900})
        page.on("console", lambda message: _note(errors, message))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "browser-analyst")
        page.fill("#id_password", "operator-password-1")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")

        page.goto(f"{live_server.url}/admin/analytics/hourlyusage/?range=7d&group=account")
        page.wait_for_function("window.analyticsCharts !== undefined")
        for canvas in CHARTS:
            assert page.locator(f"canvas#{canvas}").is_visible()
            drawn = page.evaluate(f"Chart.getChart(document.getElementById('{canvas}')) !== undefined")
            assert drawn, canvas
        points = page.evaluate("Chart.getChart('chart-usage').data.datasets[0].data.reduce((a, b) => a + b, 0)")
        assert points == 34
        assert page.evaluate("Chart.version") == "4.6.1"
        page.screenshot(path=SCREENSHOTS / "analytics.png", full_page=True)

        account = week_of_usage.accounts[0]
        page.goto(f"{live_server.url}/admin/accounts/account/{account.pk}/change/")
        assert page.locator("#account-overview").is_visible()
        page.screenshot(path=SCREENSHOTS / "account_overview.png", full_page=True)
        browser.close()
    assert errors == []
