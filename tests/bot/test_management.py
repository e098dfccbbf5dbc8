from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.models import Account
from bot.models import ProcessedUpdate
from bot.services import DUPLICATE_WINDOW
from bot.tasks import prune_processed_updates_task
from tests.factories import AccountFactory

from . import updates
from .conftest import SECRET


@pytest.mark.django_db
def test_set_webhook_registers_the_url_with_the_secret_and_publishes_the_menus(fake_bot_api):
    out = StringIO()
    call_command("set_webhook", "https://mlrouter.example/", stdout=out)
    call = fake_bot_api.last("setWebhook")
    assert call.token == fake_bot_api.token
    assert call.params["url"] == "https://mlrouter.example/telegram/webhook/"
    assert call.params["secret_token"] == SECRET
    assert call.json("allowed_updates") == ["message", "callback_query", "pre_checkout_query"]
    menus = fake_bot_api.called("setMyCommands")
    assert [m.params.get("language_code") for m in menus] == [None, "en"]
    assert menus[0].json("commands")[0] == {"command": "balance", "description": "Баланс и расходы за месяц"}
    assert menus[1].json("commands")[0] == {"command": "balance", "description": "Balance and spend this month"}
    assert out.getvalue() == "Webhook set to https://mlrouter.example/telegram/webhook/\n"


@pytest.mark.django_db
def test_set_webhook_refuses_to_register_an_open_webhook(fake_bot_api, settings):
    settings.TELEGRAM_WEBHOOK_SECRET = ""
    with pytest.raises(CommandError, match="TELEGRAM_WEBHOOK_SECRET is not set"):
        call_command("set_webhook", "https://mlrouter.example")
    assert fake_bot_api.called() == []


@pytest.mark.django_db
def test_set_webhook_refuses_a_secret_telegram_would_reject(fake_bot_api, settings):
    settings.TELEGRAM_WEBHOOK_SECRET = "has spaces:and colons"
    with pytest.raises(CommandError, match="may hold only"):
        call_command("set_webhook", "https://mlrouter.example")
    assert fake_bot_api.called() == []


@pytest.mark.django_db
def test_run_bot_polls_and_handles_updates_like_the_webhook(fake_bot_api):
    start = updates.message("/start", language_code="en")
    fake_bot_api.queue_updates(start, start, {"update_id": updates.next_update_id(), "message": "garbage"})
    call_command("run_bot", "--poll", "--once", "--timeout", "1", stdout=StringIO())
    assert [c.method for c in fake_bot_api.called()] == ["deleteWebhook", "getUpdates", "sendMessage"]
    assert fake_bot_api.last("getUpdates").params["timeout"] == "1"
    assert Account.objects.get().language == "en"
    assert ProcessedUpdate.objects.count() == 1


def test_run_bot_without_poll_points_to_the_webhook(fake_bot_api):
    with pytest.raises(CommandError, match="--poll"):
        call_command("run_bot")


@pytest.mark.django_db
def test_bot_link_prints_a_deep_link_that_start_accepts(post_update, fake_bot_api):
    account = AccountFactory(telegram_chat_id=None)
    out = StringIO()
    call_command("bot_link", str(account.pk), stdout=out, stderr=StringIO())
    link = out.getvalue().strip()
    assert link.startswith("https://t.me/ML_Router_bot?start=link-")
    post_update(updates.message("/start " + link.split("start=")[1]))
    account.refresh_from_db()
    assert account.telegram_chat_id == updates.USER_ID


@pytest.mark.django_db
def test_bot_link_refuses_an_account_already_attached():
    account = AccountFactory(telegram_chat_id=42)
    with pytest.raises(CommandError, match="already attached"):
        call_command("bot_link", str(account.pk), stdout=StringIO())


@pytest.mark.django_db
def test_pruning_forgets_only_updates_past_the_duplicate_window():
    old = ProcessedUpdate.objects.create(update_id=1, received_at=timezone.now() - DUPLICATE_WINDOW - timedelta(1))
    recent = ProcessedUpdate.objects.create(update_id=2)
    assert prune_processed_updates_task() == 1
    assert list(ProcessedUpdate.objects.values_list("update_id", flat=True)) == [recent.update_id]
    assert not ProcessedUpdate.objects.filter(pk=old.pk).exists()


@pytest.mark.django_db
def test_pruning_is_scheduled_daily_in_admin():
    task = PeriodicTask.objects.get(task="bot.tasks.prune_processed_updates_task")
    assert (task.enabled, task.interval.every, task.interval.period) == (True, 1, "days")


@pytest.mark.django_db
def test_an_update_id_seen_before_telegram_restarted_its_numbering_is_handled_again(post_update, fake_bot_api):
    update = updates.message("/help")
    ProcessedUpdate.objects.create(
        update_id=update["update_id"], received_at=timezone.now() - DUPLICATE_WINDOW - timedelta(minutes=1)
    )
    post_update(update)
    assert len(fake_bot_api.called("sendMessage")) == 1
    post_update(update)
    assert len(fake_bot_api.called("sendMessage")) == 1
