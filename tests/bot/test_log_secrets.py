"""A failing Bot API leaves no bot token in any log line: not in messages, not in the tracebacks.

The bot's own code paths log these failures (the webhook's `logger.exception`, the failed invoice), and
requests and urllib3 log every call at DEBUG with its URL, which holds `/bot<token>/`.
"""

from __future__ import annotations

import logging

import pytest

from accounts.models import ApiKey
from billing.models import TopUp
from tests.factories import AccountFactory

from . import updates

pytestmark = pytest.mark.django_db


@pytest.fixture
def every_line(caplog) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger's records, DEBUG and up
    return caplog


def assert_no_token(caplog: pytest.LogCaptureFixture, token: str) -> None:
    # caplog.text is each record formatted as a handler writes it, tracebacks included.
    secret = token.split(":", 1)[1]
    assert token not in caplog.text and secret not in caplog.text
    for record in caplog.records:
        assert secret not in record.getMessage() and secret not in (record.exc_text or "")


@pytest.mark.parametrize("failure", ["500", "closed", "unreachable"])
def test_a_failed_bot_api_call_is_logged_with_its_traceback_and_without_the_token(
    post_update, fake_bot_api, every_line, settings, failure: str
):
    if failure == "500":
        fake_bot_api.fail("sendMessage", error_code=500, description="Internal Server Error")
    elif failure == "closed":
        fake_bot_api.drop("sendMessage")
    else:
        settings.TELEGRAM_API_URL = "http://127.0.0.1:9"  # nothing listens: connection refused, URL in the error

    response = post_update(updates.message("/help"))

    assert response.status_code == 500  # Telegram redelivers
    failed = [r for r in every_line.records if r.getMessage().startswith("Telegram update")]
    assert failed and failed[0].exc_info is not None  # the failure was logged, traceback and all
    assert "/bot[redacted]/sendMessage" in every_line.text or failure != "unreachable"
    assert_no_token(every_line, fake_bot_api.token)


def test_a_refused_invoice_is_logged_without_the_token(post_update, fake_bot_api, every_line):
    AccountFactory(telegram_chat_id=updates.USER_ID, language="en")
    fake_bot_api.fail("sendInvoice", error_code=500, description="Internal Server Error")

    post_update(updates.message("/topup 5"))

    assert TopUp.objects.get().status == "failed"
    assert "sendInvoice failed" in every_line.text
    assert "sendInvoice" in every_line.text  # urllib3's DEBUG line for the call, its path masked
    assert_no_token(every_line, fake_bot_api.token)


def test_a_new_key_whose_message_fails_to_send_is_not_in_any_log_line(post_update, fake_bot_api, every_line):
    account = AccountFactory(telegram_chat_id=updates.USER_ID, language="en")
    fake_bot_api.fail("sendMessage", error_code=500, description="Internal Server Error")

    post_update(updates.callback("keys:new", message_id=42))

    sent = fake_bot_api.last("sendMessage").text  # the secret went out in the call that failed
    secret = sent.split("<code>")[1].split("</code>")[0]
    assert secret.startswith("orb_live_") and ApiKey.objects.filter(account=account).exists()
    assert "Telegram update" in every_line.text
    # Logged at DEBUG as part of the call's URL (the Bot API client sends its parameters in the query string).
    assert "sendMessage" in every_line.text
    assert secret.removeprefix("orb_live_") not in every_line.text
    assert_no_token(every_line, fake_bot_api.token)
