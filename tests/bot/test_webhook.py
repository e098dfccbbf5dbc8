from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from accounts.models import Account
from bot.models import ProcessedUpdate

from . import updates
from .conftest import SECRET, WEBHOOK


def _post(body: bytes | str, secret: str | None = SECRET):
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    return Client().post(WEBHOOK, data=body, content_type="application/json", headers=headers)


@pytest.mark.django_db
@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET[:-1]])
def test_it_refuses_a_wrong_or_missing_secret_and_processes_nothing(secret, fake_bot_api):
    response = _post(json.dumps(updates.message("/start")), secret=secret)
    assert response.status_code == 403
    assert not Account.objects.exists()
    assert not ProcessedUpdate.objects.exists()
    assert fake_bot_api.called() == []


@pytest.mark.django_db
def test_it_refuses_every_call_when_no_secret_is_configured(settings, fake_bot_api):
    settings.TELEGRAM_WEBHOOK_SECRET = ""
    response = _post(json.dumps(updates.message("/start")), secret="")
    assert response.status_code == 403
    assert not Account.objects.exists()
    assert fake_bot_api.called() == []


@pytest.mark.django_db
def test_it_only_accepts_post():
    response = Client().get(WEBHOOK, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert response.status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"update"',
        b"{}",
        b'{"update_id": "12"}',
        b'{"update_id": true, "message": {}}',
        b'{"update_id": 5, "message": {"text": "/start"}}',
        b'{"update_id": 6, "message": {"from": {"id": 1}, "chat": {"id": "1"}, "text": "/start"}}',
        b'{"update_id": 7, "callback_query": {"id": 3, "from": {"id": 1}}}',
        b'{"update_id": 8, "pre_checkout_query": {"id": "q", "from": {"id": 1}, "currency": "XTR"}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_a_malformed_update_gets_200_with_nothing_done_and_a_log_line(body, fake_bot_api, caplog):
    with caplog.at_level(logging.WARNING, logger="bot"):
        response = _post(body)
    assert response.status_code == 200
    assert not Account.objects.exists()
    assert not ProcessedUpdate.objects.exists()
    assert fake_bot_api.called() == []
    assert any("dropped" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_an_oversized_update_gets_200_with_nothing_done(fake_bot_api, caplog):
    update = updates.message("/start " + "x" * (1024 * 1024))
    with caplog.at_level(logging.WARNING, logger="bot"):
        response = _post(json.dumps(update))
    assert response.status_code == 200
    assert not Account.objects.exists()
    assert fake_bot_api.called() == []
    assert "over 1048576" in caplog.text


@pytest.mark.django_db
def test_a_repeated_update_is_handled_once(post_update, fake_bot_api):
    update = updates.message("/start")
    assert post_update(update).status_code == 200
    assert post_update(update).status_code == 200
    assert Account.objects.count() == 1
    assert len(fake_bot_api.called("sendMessage")) == 1
    assert ProcessedUpdate.objects.filter(update_id=update["update_id"]).exists()


@pytest.mark.django_db
def test_updates_the_bot_does_not_act_on_are_acknowledged(post_update, fake_bot_api):
    assert post_update(updates.message("hello there")).status_code == 200
    assert post_update({"update_id": updates.next_update_id(), "edited_message": {"text": "x"}}).status_code == 200
    assert fake_bot_api.called() == []
    assert not Account.objects.exists()


@pytest.mark.django_db
def test_a_failed_update_answers_500_and_its_redelivery_is_handled(post_update, fake_bot_api, customer):
    update = updates.message("/balance")
    fake_bot_api.fail("sendMessage", error_code=502, description="Bad Gateway")
    assert post_update(update).status_code == 500
    assert not ProcessedUpdate.objects.filter(update_id=update["update_id"]).exists()

    assert post_update(update).status_code == 200
    assert len(fake_bot_api.called("sendMessage")) == 2
    assert fake_bot_api.last("sendMessage").text.startswith("Баланс: $0.00")
