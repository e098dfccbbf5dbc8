from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.services import hold_place, hold_settle, ledger_credit
from bot.models import BotSettings
from bot.selectors import PRICES_PER_PAGE, month_start, spend_since
from completions.models import Generation
from tests.factories import AccountFactory, PriceFactory, RouteFactory, key_for

from . import updates
from .test_start import COMMANDS_EN, COMMANDS_RU


@pytest.fixture(params=["ru", "en"])
def lang(request) -> str:
    return request.param


@pytest.fixture
def account(lang):
    return AccountFactory(telegram_chat_id=updates.USER_ID, language=lang)


def _say(post_update, fake_bot_api, text: str, lang: str = "ru") -> str:
    post_update(updates.message(text, language_code=lang))
    return fake_bot_api.last("sendMessage").text


@pytest.mark.django_db
def test_balance_shows_balance_available_and_this_months_spend(post_update, fake_bot_api, account, lang):
    ledger_credit(account=account, amount="20", idempotency_key="t:fund")
    hold_place(account_id=account.pk, amount=Decimal("1.25"), reference="gen-1")
    hold_settle(reference="gen-1", cost=Decimal("0.0000420"))
    hold_place(account_id=account.pk, amount=Decimal("2.50"), reference="gen-open")
    expected = {
        "ru": "Баланс: $19.999958\nДоступно сейчас: $17.499958\nПотрачено в этом месяце: $0.000042\n\n"
        "Пополнить баланс: /topup.",
        "en": "Balance: $19.999958\nAvailable now: $17.499958\nSpent this month: $0.000042\n\nAdd funds with /topup.",
    }[lang]
    assert _say(post_update, fake_bot_api, "/balance", lang) == expected


@pytest.mark.django_db
def test_this_months_spend_counts_charges_from_the_first_of_the_month(account):
    ledger_credit(account=account, amount="5", idempotency_key="t:fund")
    hold_place(account_id=account.pk, amount=Decimal("1"), reference="gen-a")
    hold_settle(reference="gen-a", cost=Decimal("0.5"))
    now = timezone.now()
    assert month_start(datetime(2026, 3, 17, 9, 30, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)
    assert spend_since(account, month_start(now)) == Decimal("0.5")
    assert spend_since(account, now + timedelta(seconds=1)) == Decimal(0)


def _priced_model(public_id: str, prompt: str, completion: str, request: str = "0"):
    route = RouteFactory(model__public_id=public_id)
    return PriceFactory(
        model=route.model, prompt=Decimal(prompt), completion=Decimal(completion), request=Decimal(request)
    )


@pytest.mark.django_db
def test_prices_lists_the_sellable_models_with_their_current_price(post_update, fake_bot_api, lang):
    _priced_model("openai/gpt-4o-mini", "0.15", "0.60")
    _priced_model("demo/echo", "0", "0.000001", request="0.01")
    RouteFactory(model__public_id="test/unpriced")
    disabled = _priced_model("test/disabled", "1", "1")
    disabled.model.enabled = False
    disabled.model.save()
    expected = {
        "ru": "Цены в долларах за 1 млн токенов, вход / выход:\n\n"
        "<code>demo/echo</code> — $0.00 / $0.000001 + $0.01 за запрос\n"
        "<code>openai/gpt-4o-mini</code> — $0.15 / $0.60",
        "en": "Prices in USD per 1M tokens, input / output:\n\n"
        "<code>demo/echo</code> — $0.00 / $0.000001 + $0.01 per request\n"
        "<code>openai/gpt-4o-mini</code> — $0.15 / $0.60",
    }[lang]
    assert _say(post_update, fake_bot_api, "/prices", lang) == expected
    assert fake_bot_api.last("sendMessage").buttons() == []


@pytest.mark.django_db
def test_prices_are_paged_and_turned_in_place(post_update, fake_bot_api, lang):
    for n in range(PRICES_PER_PAGE + 2):
        _priced_model(f"test/m{n:02d}", "1", "2")
    first = _say(post_update, fake_bot_api, "/prices", lang)
    page = {"ru": "Страница 1 из 2", "en": "Page 1 of 2"}[lang]
    assert first.endswith(f"<code>test/m14</code> — $1.00 / $2.00\n\n{page}")
    assert fake_bot_api.last("sendMessage").buttons() == [[("▶", "prices:2")]]

    post_update(updates.callback("prices:2", language_code=lang, message_id=77))
    edit = fake_bot_api.last("editMessageText")
    assert edit.params["message_id"] == "77"
    page = {"ru": "Страница 2 из 2", "en": "Page 2 of 2"}[lang]
    assert edit.text.endswith(f"<code>test/m15</code> — $1.00 / $2.00\n<code>test/m16</code> — $1.00 / $2.00\n\n{page}")
    assert edit.buttons() == [[("◀", "prices:1")]]
    assert fake_bot_api.last("answerCallbackQuery").params["callback_query_id"].startswith("cq-")


@pytest.mark.django_db
def test_prices_says_so_when_nothing_is_for_sale(post_update, fake_bot_api, lang):
    expected = {"ru": "Сейчас нет доступных моделей.", "en": "No models are available right now."}[lang]
    assert _say(post_update, fake_bot_api, "/prices", lang) == expected


@pytest.mark.django_db
def test_usage_lists_the_latest_generations_with_cost(post_update, fake_bot_api, account, lang):
    price = _priced_model("openai/gpt-4o-mini", "0.15", "0.60")
    key_for(account)
    key = account.api_keys.get()
    started = datetime(2026, 11, 20, 8, 5, tzinfo=UTC)
    for n, (status, cost) in enumerate([("completed", "0.000042"), ("cancelled", "0.0000066"), ("failed", "0")]):
        Generation.objects.create(
            id=f"gen-{n}",
            account=account,
            api_key=key,
            model=price.model,
            price=price,
            status=status,
            prompt_tokens=100 + n,
            completion_tokens=40,
            cost=Decimal(cost),
            started_at=started + timedelta(minutes=n),
        )
    expected = {
        "ru": "Ваши последние запросы:\n\n"
        "2026-11-20 08:07 · <code>openai/gpt-4o-mini</code> · 102 → 40 токенов · $0.00 (ошибка)\n"
        "2026-11-20 08:06 · <code>openai/gpt-4o-mini</code> · 101 → 40 токенов · $0.000006 (отменён)\n"
        "2026-11-20 08:05 · <code>openai/gpt-4o-mini</code> · 100 → 40 токенов · $0.000042",
        "en": "Your latest requests:\n\n"
        "2026-11-20 08:07 · <code>openai/gpt-4o-mini</code> · 102 → 40 tokens · $0.00 (failed)\n"
        "2026-11-20 08:06 · <code>openai/gpt-4o-mini</code> · 101 → 40 tokens · $0.000006 (cancelled)\n"
        "2026-11-20 08:05 · <code>openai/gpt-4o-mini</code> · 100 → 40 tokens · $0.000042",
    }[lang]
    assert _say(post_update, fake_bot_api, "/usage", lang) == expected


@pytest.mark.django_db
def test_usage_without_requests_says_how_to_start(post_update, fake_bot_api, account, lang):
    expected = {
        "ru": "Запросов пока нет. Создайте ключ командой /keys и сделайте первый запрос.",
        "en": "No requests yet. Create a key with /keys and make your first call.",
    }[lang]
    assert _say(post_update, fake_bot_api, "/usage", lang) == expected


@pytest.mark.django_db
def test_help_lists_the_commands(post_update, fake_bot_api, lang):
    expected = {"ru": "Что я умею:\n\n" + COMMANDS_RU, "en": "What I can do:\n\n" + COMMANDS_EN}[lang]
    assert _say(post_update, fake_bot_api, "/help", lang) == expected


@pytest.mark.django_db
def test_paysupport_names_the_contact_and_the_account(post_update, fake_bot_api, account, lang):
    BotSettings.objects.create(support_contact="Support <help@mlrouter.example>")
    expected = {
        "ru": "Поддержка по платежам\n\nПополнения зачисляются на баланс ML Router в долларах, как только Telegram "
        "подтверждает платёж; неизрасходованные пополнения, оплаченные в Stars, можно вернуть.\n\n"
        "Если платёж не зачислен или вы хотите вернуть деньги, напишите в Support &lt;help@mlrouter.example&gt; "
        f"и укажите номер аккаунта №{account.pk}.",
        "en": "Payment support\n\nTop-ups are credited in USD to your ML Router balance as soon as Telegram confirms "
        "the payment; unused top-ups paid in Stars can be refunded.\n\n"
        "If a payment did not arrive or you want a refund, write to Support &lt;help@mlrouter.example&gt; "
        f"with your account number #{account.pk}.",
    }[lang]
    assert _say(post_update, fake_bot_api, "/paysupport", lang) == expected


@pytest.mark.django_db
def test_paysupport_works_before_start(post_update, fake_bot_api, lang):
    expected = {
        "ru": "Если платёж не зачислен или вы хотите вернуть деньги, напишите в поддержку ML Router.",
        "en": "If a payment did not arrive or you want a refund, write to ML Router support.",
    }[lang]
    assert _say(post_update, fake_bot_api, "/paysupport", lang).endswith("\n\n" + expected)


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["/balance", "/usage", "/keys", "/topup 5", "/redeem X"])
def test_account_commands_before_start_ask_for_start(post_update, fake_bot_api, lang, command):
    expected = {
        "ru": "Сначала отправьте /start, чтобы создать аккаунт.",
        "en": "Send /start first to create your account.",
    }
    assert _say(post_update, fake_bot_api, command, lang) == expected[lang]
    assert fake_bot_api.called("sendInvoice") == []


@pytest.mark.django_db
def test_an_unknown_command_points_to_help(post_update, fake_bot_api, account, lang):
    expected = {"ru": "Неизвестная команда. Список команд: /help.", "en": "Unknown command. /help lists what I can do."}
    assert _say(post_update, fake_bot_api, "/frobnicate", lang) == expected[lang]


@pytest.mark.django_db
def test_a_command_addressed_to_the_bot_by_name_is_understood(post_update, fake_bot_api, account, lang):
    assert _say(post_update, fake_bot_api, "/HELP@ML_Router_bot", lang).startswith(
        {"ru": "Что я умею:", "en": "What I can do:"}[lang]
    )
