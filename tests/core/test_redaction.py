"""No secret in any log line: customer keys, the bot token, provider keys and Bearer values are masked."""

# ruff: noqa: F811  (pytest fixtures imported from other modules are parameters here)

from __future__ import annotations

import logging

import pytest
import requests
import telebot

from bot import telegram
from core.redaction import MASK, redact, secret_register
from tests.completions.test_chat_view import (  # noqa: F401  (fixtures)
    HI,
    PROVIDER_KEY,
    FakeProvider,
    Shop,
    provider,
    provider_server,
    shop,
)
from tests.fakes.telegram import _fake_bot_api_server, fake_bot_api  # noqa: F401  (fixtures)

log = logging.getLogger("tests.redaction")
CUSTOMER_KEY = "orb_live_" + "Q" * 40


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"key {CUSTOMER_KEY} refused", CUSTOMER_KEY),
        ("POST /bot123456789:AAH-xyz_0123456789abcdefghijklmnopqrstu/sendMessage 500", "AAH-xyz_0123456789"),
        ("headers={'Authorization': 'Bearer orb_live_abc'}", "orb_live_abc"),
        ("Authorization: Bearer some-provider-token", "some-provider-token"),
        ("openai key sk-proj-0123456789abcdefABCDEF leaked", "sk-proj-0123456789abcdef"),
    ],
)
def test_redact_masks_each_kind_of_secret(text: str, secret: str):
    clean = redact(text)
    assert secret not in clean and MASK in clean


def test_a_registered_secret_and_the_configured_tokens_are_masked(settings):
    secret_register("provider-key-registered-42")
    settings.TELEGRAM_BOT_TOKEN = "777:short-test-token"
    clean = redact("calling with provider-key-registered-42 and 777:short-test-token")
    assert clean == f"calling with {MASK} and {MASK}"


def test_ordinary_text_is_left_alone():
    text = "task-1234567890abcdefgh finished for account 42 in 1.5 s; risk-assessment done"
    assert redact(text) == text


def test_the_message_its_arguments_and_the_traceback_are_all_cleaned(caplog):
    caplog.set_level(logging.INFO)
    try:
        raise ValueError(f"bad key {CUSTOMER_KEY}")
    except ValueError:
        log.exception("refusing %s for %s", CUSTOMER_KEY, "Bearer abc.def")
    record = caplog.records[-1]
    assert record.getMessage() == f"refusing {MASK} for Bearer {MASK}"
    assert "orb_live_" not in caplog.text and "abc.def" not in caplog.text
    assert "ValueError: bad key [redacted]" in caplog.text


@pytest.mark.django_db
def test_failing_bot_api_and_provider_calls_leave_no_secret_in_any_log_line(
    caplog,
    fake_bot_api,
    settings,
    shop: Shop,
    provider: FakeProvider,
):
    caplog.set_level(logging.DEBUG)
    token = fake_bot_api.token
    # The Bot API answers an error, then cannot be reached at all (requests names the URL, token and all).
    fake_bot_api.fail("sendMessage", error_code=500, description="Internal Server Error")
    with pytest.raises(telebot.apihelper.ApiTelegramException):
        telegram.send(42, "hello")
    settings.TELEGRAM_API_URL = "http://127.0.0.1:9"
    try:
        telegram.send(42, "hello")
    except requests.RequestException:
        log.exception("sending to Telegram failed")
    # The provider refuses our key (its message quoting it), then rejects the request quoting it again.
    provider.answer({"error": {"message": f"Incorrect API key provided: {PROVIDER_KEY}"}}, status=401)
    assert shop.post({"model": shop.model.public_id, "messages": HI}).status_code == 502
    provider.answer({"error": {"message": f"bad request for {PROVIDER_KEY}"}}, status=400)
    assert shop.post({"model": shop.model.public_id, "messages": HI}).status_code == 400
    # A customer's key that does not exist, and one that does on a request that fails.
    assert shop.post({"model": shop.model.public_id, "messages": HI}, key=CUSTOMER_KEY).status_code == 401
    provider.answer({"error": {"message": f"down; your key {PROVIDER_KEY} is fine"}}, status=500)
    assert shop.post({"model": shop.model.public_id, "messages": HI}).status_code == 502
    log.warning("request by %s failed", shop.key)

    lines = caplog.text
    assert "sendMessage" in lines or "Telegram" in lines  # the failures were logged...
    for secret in (token, PROVIDER_KEY, "orb_live_", shop.key):
        assert secret not in lines  # ...and nothing secret with them
