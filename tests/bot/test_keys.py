from __future__ import annotations

import pytest

from accounts.keys import key_hash
from accounts.models import ApiKey
from accounts.services import api_key_create
from bot.keys import MAX_ACTIVE_KEYS
from tests.factories import AccountFactory

from . import updates

TEXTS = {
    "ru": {
        "none": "У вас пока нет API-ключей.",
        "list": "Ваши API-ключи:",
        "line": "<code>{prefix}…</code> telegram — создан {date}, не использовался",
        "create": "Создать ключ",
        "revoke": "Отозвать {prefix}…",
        "secret": "Ваш новый API-ключ:\n\n<code>{secret}</code>\n\nСкопируйте его сейчас: он показывается только один "
        "раз. Передавайте его в заголовке <code>Authorization: Bearer orb_live_…</code>.",
        "confirm": "Отозвать <code>{prefix}…</code>? Запросы с этим ключом перестанут работать в течение нескольких "
        "секунд.",
        "yes": "Да, отозвать",
        "cancel": "Отмена",
        "revoked": "Ключ <code>{prefix}…</code> отозван.",
        "gone": "Этот ключ уже не действует.",
        "limit": f"У вас уже {MAX_ACTIVE_KEYS} ключей; сначала отзовите один из них.",
    },
    "en": {
        "none": "You have no API keys yet.",
        "list": "Your API keys:",
        "line": "<code>{prefix}…</code> telegram — created {date}, never used",
        "create": "Create a key",
        "revoke": "Revoke {prefix}…",
        "secret": "Your new API key:\n\n<code>{secret}</code>\n\nCopy it now: it is shown only this once. Send it in "
        "the header <code>Authorization: Bearer orb_live_…</code>.",
        "confirm": "Revoke <code>{prefix}…</code>? Requests with it stop working within seconds.",
        "yes": "Yes, revoke",
        "cancel": "Cancel",
        "revoked": "Key <code>{prefix}…</code> revoked.",
        "gone": "This key is no longer active.",
        "limit": f"You already have {MAX_ACTIVE_KEYS} keys; revoke one first.",
    },
}


@pytest.fixture(params=["ru", "en"])
def lang(request) -> str:
    return request.param


@pytest.fixture
def account(lang):
    return AccountFactory(telegram_chat_id=updates.USER_ID, language=lang)


@pytest.mark.django_db
def test_keys_without_keys_offers_to_create_one(post_update, fake_bot_api, account, lang):
    post_update(updates.message("/keys", language_code=lang))
    reply = fake_bot_api.last("sendMessage")
    assert reply.text == TEXTS[lang]["none"]
    assert reply.buttons() == [[(TEXTS[lang]["create"], "keys:new")]]


@pytest.mark.django_db
def test_creating_a_key_shows_its_secret_once_and_lists_it_by_prefix(post_update, fake_bot_api, account, lang):
    post_update(updates.callback("keys:new", language_code=lang, message_id=42))
    key = ApiKey.objects.get(account=account)
    secret_message = fake_bot_api.last("sendMessage")
    secret = secret_message.text.split("<code>")[1].split("</code>")[0]
    assert key_hash(secret) == key.key_hash
    assert secret_message.text == TEXTS[lang]["secret"].format(secret=secret)

    listing = fake_bot_api.last("editMessageText")
    line = TEXTS[lang]["line"].format(prefix=key.prefix, date=f"{key.created_at:%Y-%m-%d}")
    assert listing.text == f"{TEXTS[lang]['list']}\n\n{line}"
    assert listing.params["message_id"] == "42"
    assert secret not in listing.text
    assert listing.buttons() == [
        [(TEXTS[lang]["create"], "keys:new")],
        [(TEXTS[lang]["revoke"].format(prefix=key.prefix), f"keys:revoke:{key.pk}")],
    ]

    post_update(updates.message("/keys", language_code=lang))
    assert fake_bot_api.last("sendMessage").text == f"{TEXTS[lang]['list']}\n\n{line}"
    assert sum(secret in t for t in fake_bot_api.sent()) == 1


@pytest.mark.django_db
def test_revoking_asks_first_then_revokes(post_update, fake_bot_api, account, lang):
    key, _secret = api_key_create(account=account, name="telegram")
    post_update(updates.callback(f"keys:revoke:{key.pk}", language_code=lang))
    question = fake_bot_api.last("editMessageText")
    assert question.text == TEXTS[lang]["confirm"].format(prefix=key.prefix)
    assert question.buttons() == [
        [(TEXTS[lang]["yes"], f"keys:revoke-yes:{key.pk}"), (TEXTS[lang]["cancel"], "keys:list")]
    ]
    key.refresh_from_db()
    assert key.revoked_at is None

    post_update(updates.callback(f"keys:revoke-yes:{key.pk}", language_code=lang))
    key.refresh_from_db()
    assert key.revoked_at is not None
    done = fake_bot_api.last("editMessageText")
    assert done.text == TEXTS[lang]["revoked"].format(prefix=key.prefix) + "\n\n" + TEXTS[lang]["none"]
    assert done.buttons() == [[(TEXTS[lang]["create"], "keys:new")]]


@pytest.mark.django_db
def test_cancel_goes_back_to_the_list_without_revoking(post_update, fake_bot_api, account, lang):
    key, _secret = api_key_create(account=account, name="telegram")
    post_update(updates.callback("keys:list", language_code=lang))
    assert fake_bot_api.last("editMessageText").text.startswith(TEXTS[lang]["list"])
    key.refresh_from_db()
    assert key.revoked_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("whose", ["another account", "revoked", "not a number"])
def test_a_key_of_another_account_or_already_revoked_cannot_be_revoked(post_update, fake_bot_api, account, lang, whose):
    other_key, _ = api_key_create(account=AccountFactory(), name="theirs")
    if whose == "revoked":
        other_key, _ = api_key_create(account=account, name="mine")
        ApiKey.objects.filter(pk=other_key.pk).update(revoked_at="2026-01-01T00:00:00Z")
    key_id = "abc" if whose == "not a number" else other_key.pk
    post_update(updates.callback(f"keys:revoke-yes:{key_id}", language_code=lang))
    assert fake_bot_api.last("answerCallbackQuery").params["text"] == TEXTS[lang]["gone"]
    other_key.refresh_from_db()
    assert (other_key.revoked_at is None) == (whose != "revoked")
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == (1 if whose == "revoked" else 0)


@pytest.mark.django_db
def test_no_more_keys_than_the_limit_are_issued(post_update, fake_bot_api, account, lang):
    for _ in range(MAX_ACTIVE_KEYS):
        api_key_create(account=account)
    post_update(updates.callback("keys:new", language_code=lang))
    assert ApiKey.objects.filter(account=account).count() == MAX_ACTIVE_KEYS
    assert fake_bot_api.last("answerCallbackQuery").params["text"] == TEXTS[lang]["limit"]
    assert fake_bot_api.called("sendMessage") == []


@pytest.mark.django_db
def test_a_button_pressed_before_start_asks_for_start(post_update, fake_bot_api):
    post_update(updates.callback("keys:new", language_code="en"))
    assert not ApiKey.objects.exists()
    assert fake_bot_api.last("answerCallbackQuery").params["text"] == "Send /start first to create your account."


@pytest.mark.django_db
def test_on_an_old_message_the_list_comes_as_a_new_message(post_update, fake_bot_api, account, lang):
    post_update(updates.callback("keys:list", language_code=lang, message_id=None))
    assert fake_bot_api.called("editMessageText") == []
    assert fake_bot_api.last("sendMessage").text == TEXTS[lang]["none"]
