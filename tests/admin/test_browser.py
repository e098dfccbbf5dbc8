"""The account pages in a real headless Chromium: they render, read well and the top-up button works."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from billing.services import hold_place, ledger_credit
from tests.factories import UserFactory, funded_account, key_for

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")


@pytest.fixture
def accounts_with_history(transactional_db):
    UserFactory(username="browser-ops")
    account = funded_account("25.00", name="Acme Labs", telegram_username="acme", telegram_chat_id=777001)
    ledger_credit(account=account, amount=Decimal("4.5"), idempotency_key="browser:promo", kind="promo", memo="welcome")
    hold_place(account_id=account.pk, amount=Decimal("0.75"), reference="gen-browser-1")
    key_for(account, name="production", rpm_limit=120)
    key_for(account, name="staging")
    for n in range(8):
        funded_account(f"{n + 1}.25", name=f"Customer {n}")
    return account


def test_an_operator_logs_in_and_tops_up_an_account_in_chromium(live_server, accounts_with_history):
    account = accounts_with_history
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(locale="en-US", viewport={"width": 1440, "height": 900})
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "browser-ops")
        page.fill("#id_password", "operator-password-1")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")

        page.goto(f"{live_server.url}/admin/accounts/account/")
        assert page.locator("#result_list").is_visible()
        assert "$29.50" in page.inner_text("#result_list")
        page.screenshot(path=SCREENSHOTS / "account_list.png", full_page=True)

        page.goto(f"{live_server.url}/admin/accounts/account/{account.pk}/change/")
        assert "$28.75" in page.inner_text("#content-main")
        page.screenshot(path=SCREENSHOTS / "account_change.png", full_page=True)

        page.click("text=Top up")
        page.fill("#id_amount", "10")
        page.fill("#id_memo", "wire transfer 2024-118")
        page.screenshot(path=SCREENSHOTS / "account_topup.png", full_page=True)
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/accounts/account/{account.pk}/change/")
        assert "Top-up of $10.00 recorded" in page.inner_text(".messagelist")
        assert "$39.50" in page.inner_text("#content-main")

        page.goto(f"{live_server.url}/admin/accounts/apikey/add/?account={account.pk}")
        page.fill("#id_name", "ci")
        page.click("input[name=_save]")
        secret = page.inner_text("#issued-secret")
        assert secret.startswith("orb_live_")
        page.screenshot(path=SCREENSHOTS / "apikey_issued.png", full_page=True)
        page.click("text=I have copied it")
        assert secret not in page.content()
        browser.close()
