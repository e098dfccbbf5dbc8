from __future__ import annotations

import pytest

from accounts.models import Account
from bot.links import LINK_TTL_SECONDS, link_token_account_id, link_token_make
from tests.factories import AccountFactory, funded_account

from . import updates
from .updates import USER_ID

COMMANDS_RU = (
    "/balance — баланс и расходы за месяц\n"
    "/topup — пополнить баланс (Telegram Stars или карта)\n"
    "/keys — создать и отозвать API-ключи\n"
    "/prices — цены моделей\n"
    "/usage — последние запросы и их стоимость\n"
    "/redeem КОД — активировать промокод\n"
    "/paysupport — помощь с платежами"
)
COMMANDS_EN = (
    "/balance — balance and spend this month\n"
    "/topup — add funds (Telegram Stars or card)\n"
    "/keys — create and revoke API keys\n"
    "/prices — model prices\n"
    "/usage — your latest requests and their cost\n"
    "/redeem CODE — redeem a promo code\n"
    "/paysupport — help with payments"
)


@pytest.mark.django_db
def test_start_creates_the_account_for_the_chat_and_answers_in_russian_by_default(post_update, fake_bot_api):
    post_update(updates.message("/start", language_code="uk"))
    account = Account.objects.get()
    assert (account.telegram_chat_id, account.telegram_username, account.name) == (USER_ID, "ivan", "Ivan Petrov")
    assert account.language == "ru"
    reply = fake_bot_api.last("sendMessage")
    assert reply.chat_id == USER_ID
    assert reply.params["parse_mode"] == "HTML"
    assert reply.text == (
        f"Добро пожаловать в ML Router! Ваш аккаунт №{account.pk} готов.\n\n"
        "ML Router — OpenAI-совместимый API для множества языковых моделей с оплатой с предоплаченного баланса "
        "в долларах. Создайте ключ командой /keys, пополните баланс командой /topup и подключите любой OpenAI SDK "
        f"к ML Router.\n\n{COMMANDS_RU}"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("language_code", ["en", "en-US", "EN-gb"])
def test_start_answers_english_language_users_in_english(post_update, fake_bot_api, language_code):
    post_update(updates.message("/start", language_code=language_code))
    account = Account.objects.get()
    assert account.language == "en"
    assert fake_bot_api.last("sendMessage").text == (
        f"Welcome to ML Router! Your account #{account.pk} is ready.\n\n"
        "ML Router is an OpenAI-compatible API for many language models, paid from a prepaid USD balance. "
        "Create a key with /keys, add funds with /topup and point any OpenAI SDK at ML Router.\n\n"
        f"{COMMANDS_EN}"
    )


@pytest.mark.django_db
def test_a_user_without_a_language_code_gets_russian(post_update, fake_bot_api):
    post_update(updates.message("/start", language_code=None))
    assert Account.objects.get().language == "ru"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language_code", "expected"),
    [
        ("ru", "С возвращением! Аккаунт №{id}, баланс: $12.50.\n\n" + COMMANDS_RU),
        ("en", "Welcome back! Account #{id}, balance: $12.50.\n\n" + COMMANDS_EN),
    ],
)
def test_start_again_greets_the_existing_account_and_follows_the_users_language(
    post_update, fake_bot_api, language_code, expected
):
    account = funded_account("12.50", telegram_chat_id=USER_ID, language="ru" if language_code == "en" else "en")
    post_update(updates.message("/start", language_code=language_code))
    assert Account.objects.count() == 1
    account.refresh_from_db()
    assert account.language == language_code
    assert fake_bot_api.last("sendMessage").text == expected.format(id=account.pk)


@pytest.mark.django_db
def test_the_api_base_url_is_listed_when_configured(post_update, fake_bot_api, settings):
    settings.PUBLIC_BASE_URL = "https://mlrouter.example/"
    post_update(updates.message("/help", language_code="en"))
    assert fake_bot_api.last("sendMessage").text == (
        "What I can do:\n\n" + COMMANDS_EN + "\nAPI base URL for OpenAI SDKs: <code>https://mlrouter.example/v1</code>"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language_code", "expected"),
    [
        ("ru", "Этот чат привязан к аккаунту №{id}. Баланс: $3.00.\n\n" + COMMANDS_RU),
        ("en", "This chat is now linked to account #{id}. Balance: $3.00.\n\n" + COMMANDS_EN),
    ],
)
def test_a_deep_link_attaches_the_chat_to_an_operator_created_account(
    post_update, fake_bot_api, language_code, expected
):
    account = funded_account("3.00", telegram_chat_id=None)
    post_update(updates.message(f"/start {link_token_make(account.pk)}", language_code=language_code))
    account.refresh_from_db()
    assert (account.telegram_chat_id, account.language) == (USER_ID, language_code)
    assert Account.objects.count() == 1
    assert fake_bot_api.last("sendMessage").text == expected.format(id=account.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["forged", "expired", "taken", "chat_has_other_account"])
def test_a_deep_link_is_refused_when_invalid_expired_or_conflicting(post_update, fake_bot_api, case):
    account = AccountFactory(telegram_chat_id=None)
    token = link_token_make(account.pk)
    if case == "forged":
        token = token[:-1] + ("0" if token[-1] != "0" else "1")
    elif case == "expired":
        token = link_token_make(account.pk, now=1_700_000_000)
    elif case == "taken":
        Account.objects.filter(pk=account.pk).update(telegram_chat_id=555)
    else:
        AccountFactory(telegram_chat_id=USER_ID)
    before = Account.objects.count()
    post_update(updates.message(f"/start {token}", language_code="en"))
    account.refresh_from_db()
    assert account.telegram_chat_id in (None, 555)
    assert Account.objects.count() == before
    assert fake_bot_api.last("sendMessage").text == (
        "This link is invalid, expired or belongs to another chat. Ask for a new one."
    )


def test_a_link_token_expires_after_its_ttl():
    token = link_token_make(42, now=1_800_000_000)
    assert len(token) <= 64
    assert link_token_account_id(token, now=1_800_000_000 + LINK_TTL_SECONDS) == 42
    assert link_token_account_id(token, now=1_800_000_001 + LINK_TTL_SECONDS) is None
    assert link_token_account_id(token.replace("link-42", "link-43"), now=1_800_000_000) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language_code", "expected"),
    [("ru", "Пожалуйста, напишите мне в личном чате."), ("en", "Please talk to me in a private chat.")],
)
def test_commands_in_a_group_are_answered_with_a_pointer_to_a_private_chat(
    post_update, fake_bot_api, language_code, expected
):
    post_update(updates.message("/start@ML_Router_bot", chat_type="supergroup", language_code=language_code))
    assert not Account.objects.exists()
    reply = fake_bot_api.last("sendMessage")
    assert (reply.chat_id, reply.text) == (-100_500, expected)
