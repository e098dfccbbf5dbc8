"""Every bot test talks to the fake Bot API and posts updates to the webhook with the right secret."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.http import HttpResponse
from django.test import Client

from accounts.models import Account
from tests.factories import AccountFactory
from tests.fakes.telegram import _fake_bot_api_server, fake_bot_api  # noqa: F401 — fixtures

from .updates import USER_ID

SECRET = "s3cret-webhook-token_0123456789"
WEBHOOK = "/telegram/webhook/"


@pytest.fixture(autouse=True)
def _bot_settings(settings, fake_bot_api):  # noqa: F811 — the fixture imported above
    settings.ROOT_URLCONF = "tests.bot.urls"
    settings.TELEGRAM_WEBHOOK_SECRET = SECRET
    settings.TELEGRAM_PAYMENT_PROVIDER_TOKEN = ""
    _cache_forget("bot:*", "billing:*")


def _cache_forget(*patterns: str) -> None:
    """Drop the bot's and billing's counters, not the whole cache: another test worker's entries share it."""
    if not hasattr(cache, "_cache") or not hasattr(cache._cache, "get_client"):
        cache.clear()  # in-process cache: this worker's alone
        return
    client = cache._cache.get_client(write=True)
    for pattern in patterns:
        for key in client.scan_iter(match=cache.make_key(pattern)):
            client.delete(key)


@pytest.fixture
def post_update() -> Callable[[dict], HttpResponse]:
    """Deliver an update to the webhook as Telegram does; return the response."""
    client = Client()

    def post(update: dict) -> HttpResponse:
        return client.post(
            WEBHOOK,
            data=json.dumps(update),
            content_type="application/json",
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        )

    return post


@pytest.fixture
def customer() -> Account:
    """A Russian-speaking customer whose Telegram chat is linked."""
    return AccountFactory(telegram_chat_id=USER_ID, language="ru")


@pytest.fixture
def english_customer() -> Account:
    return AccountFactory(telegram_chat_id=USER_ID, language="en")
