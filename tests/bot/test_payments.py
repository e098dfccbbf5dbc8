from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from billing.models import LedgerEntry, TopUp
from billing.selectors import ledger_sum
from billing.topups import TopUpError, topup_complete, topup_start
from bot.models import BotSettings
from tests.factories import AccountFactory

from . import updates

TEXTS = {
    "ru": {
        "label": "Пополнение {amount}",
        "title": "Баланс ML Router",
        "description": "{amount} на баланс аккаунта ML Router №{id}.",
        "choose": "На какую сумму пополнить баланс? Выберите сумму или отправьте /topup СУММА в долларах, "
        "от {min} до {max}.",
        "bounds": "Укажите сумму в долларах от {min} до {max}, например /topup 10.",
        "not_started": "Не удалось начать оплату. Попробуйте позже.",
        "received": "Платёж получен: зачислено {amount}. Баланс: {balance}.",
        "unknown": "Счёт не найден. Запросите новый командой /topup.",
        "not_pending": "Этот счёт уже оплачен или устарел. Запросите новый командой /topup.",
        "other_account": "Этот счёт выставлен другому аккаунту.",
        "mismatch": "Сумма счёта изменилась. Запросите новый командой /topup.",
        "not_credited": "Мы получили ваш платёж, но не смогли зачислить его автоматически. "
        "Пожалуйста, обратитесь в /paysupport.",
    },
    "en": {
        "label": "Top-up {amount}",
        "title": "ML Router balance",
        "description": "{amount} on the balance of ML Router account #{id}.",
        "choose": "How much do you want to add? Choose an amount or send /topup AMOUNT in USD, from {min} to {max}.",
        "bounds": "Send the amount in USD from {min} to {max}, for example /topup 10.",
        "not_started": "The payment could not be started. Please try again later.",
        "received": "Payment received: {amount} added. Balance: {balance}.",
        "unknown": "This invoice is unknown. Request a new one with /topup.",
        "not_pending": "This invoice was already paid or has expired. Request a new one with /topup.",
        "other_account": "This invoice belongs to another account.",
        "mismatch": "The invoice amount has changed. Request a new one with /topup.",
        "not_credited": "We received your payment but could not credit it automatically. Please contact /paysupport.",
    },
}


@pytest.fixture(params=["ru", "en"])
def lang(request) -> str:
    return request.param


@pytest.fixture
def account(lang):
    return AccountFactory(telegram_chat_id=updates.USER_ID, language=lang)


def _invoice_for(post_update, fake_bot_api, amount: str, lang: str = "ru") -> TopUp:
    post_update(updates.message(f"/topup {amount}", language_code=lang))
    return TopUp.objects.get(payload=fake_bot_api.last("sendInvoice").params["payload"])


def _pending(account, usd: str = "5", stars: int = 385) -> TopUp:
    return topup_start(
        account=account, method="telegram_stars", amount_usd=Decimal(usd), currency="XTR", amount_minor=stars
    )


@pytest.mark.django_db
def test_topup_sends_a_stars_invoice_worth_the_amount_and_records_it_pending(post_update, fake_bot_api, account, lang):
    BotSettings.objects.create(usd_per_star=Decimal("0.013"))
    topup = _invoice_for(post_update, fake_bot_api, "5", lang)
    invoice = fake_bot_api.last("sendInvoice")
    # 5 / 0.013 = 384.6…: rounded up, so the payer never pays less than what is credited.
    assert invoice.json("prices") == [{"label": TEXTS[lang]["label"].format(amount="$5.00"), "amount": 385}]
    assert (invoice.params["currency"], invoice.params["provider_token"]) == ("XTR", "")
    assert invoice.chat_id == updates.USER_ID
    assert invoice.params["title"] == TEXTS[lang]["title"]
    assert invoice.params["description"] == TEXTS[lang]["description"].format(amount="$5.00", id=account.pk)
    assert (topup.account, topup.status, topup.method) == (account, "pending", "telegram_stars")
    assert (topup.amount_usd, topup.currency, topup.amount_minor) == (Decimal("5"), "XTR", 385)
    assert topup.payload.startswith("topup:") and len(topup.payload) <= 128
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_each_invoice_has_its_own_payload(post_update, fake_bot_api, account):
    first = _invoice_for(post_update, fake_bot_api, "5")
    second = _invoice_for(post_update, fake_bot_api, "5")
    assert first.payload != second.payload


@pytest.mark.django_db
def test_with_a_provider_token_the_invoice_is_in_the_providers_currency(
    post_update, fake_bot_api, account, lang, settings
):
    settings.TELEGRAM_PAYMENT_PROVIDER_TOKEN = "284685063:TEST:provider"
    BotSettings.objects.create(provider_currency="RUB", usd_per_provider_unit=Decimal("0.0125"))
    topup = _invoice_for(post_update, fake_bot_api, "$7,50", lang)
    invoice = fake_bot_api.last("sendInvoice")
    assert (invoice.params["currency"], invoice.params["provider_token"]) == ("RUB", "284685063:TEST:provider")
    # $7.50 / 0.0125 = 600 RUB = 60000 kopecks.
    assert invoice.json("prices") == [{"label": TEXTS[lang]["label"].format(amount="$7.50"), "amount": 60000}]
    assert (topup.method, topup.amount_usd, topup.amount_minor) == ("telegram_provider", Decimal("7.5"), 60000)


@pytest.mark.django_db
def test_topup_without_an_amount_offers_preset_amounts_within_bounds(post_update, fake_bot_api, account, lang):
    BotSettings.objects.create(min_topup_usd=Decimal(2), max_topup_usd=Decimal(30))
    post_update(updates.message("/topup", language_code=lang))
    reply = fake_bot_api.last("sendMessage")
    assert reply.text == TEXTS[lang]["choose"].format(min="$2.00", max="$30.00")
    assert reply.buttons() == [[("$5.00", "topup:5"), ("$10.00", "topup:10"), ("$25.00", "topup:25")]]

    post_update(updates.callback("topup:10", language_code=lang))
    topup = TopUp.objects.get()
    assert (topup.amount_usd, topup.amount_minor) == (Decimal("10"), 770)


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0.99", "100.01", "-5", "abc", "NaN", "Infinity", "1e9"])
def test_an_amount_out_of_bounds_or_unreadable_gets_no_invoice(post_update, fake_bot_api, account, lang, amount):
    post_update(updates.message(f"/topup {amount}", language_code=lang))
    assert fake_bot_api.last("sendMessage").text == TEXTS[lang]["bounds"].format(min="$1.00", max="$100.00")
    assert fake_bot_api.called("sendInvoice") == []
    assert not TopUp.objects.exists()


@pytest.mark.django_db
def test_an_invoice_telegram_refuses_marks_the_topup_failed(post_update, fake_bot_api, account, lang):
    fake_bot_api.fail("sendInvoice", description="Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID")
    post_update(updates.message("/topup 5", language_code=lang))
    assert TopUp.objects.get().status == "failed"
    assert fake_bot_api.last("sendMessage").text == TEXTS[lang]["not_started"]


@pytest.mark.django_db
def test_the_whole_stars_payment_credits_the_balance_once(post_update, fake_bot_api, account, lang):
    topup = _invoice_for(post_update, fake_bot_api, "5", lang)
    post_update(updates.pre_checkout(topup.payload, currency="XTR", total_amount=385, language_code=lang))
    answer = fake_bot_api.last("answerPreCheckoutQuery")
    assert answer.params["ok"] == "True"
    assert "error_message" not in answer.params
    account.refresh_from_db()
    assert account.balance == Decimal(0)

    payment = updates.successful_payment(topup.payload, currency="XTR", total_amount=385, charge_id="stxCHARGE1")
    post_update(payment)
    topup.refresh_from_db()
    account.refresh_from_db()
    assert (topup.status, topup.telegram_payment_charge_id) == ("paid", "stxCHARGE1")
    assert topup.paid_at is not None
    assert account.balance == Decimal("5.0000000000")
    entry = LedgerEntry.objects.get(account=account)
    assert (entry.kind, entry.amount, entry.idempotency_key) == ("topup", Decimal("5"), "telegram:stxCHARGE1")
    assert topup.ledger_entry == entry
    assert fake_bot_api.last("sendMessage").text == TEXTS[lang]["received"].format(amount="$5.00", balance="$5.00")

    # Telegram repeats the update, and a copy arrives under another update id: nothing more happens.
    messages = len(fake_bot_api.called("sendMessage"))
    post_update(payment)
    post_update(updates.successful_payment(topup.payload, currency="XTR", total_amount=385, charge_id="stxCHARGE1"))
    account.refresh_from_db()
    assert account.balance == Decimal("5")
    assert LedgerEntry.objects.count() == 1
    assert len(fake_bot_api.called("sendMessage")) == messages

    # Once paid, the invoice cannot be paid again.
    post_update(updates.pre_checkout(topup.payload, currency="XTR", total_amount=385, language_code=lang))
    refused = fake_bot_api.last("answerPreCheckoutQuery")
    assert (refused.params["ok"], refused.params["error_message"]) == ("False", TEXTS[lang]["not_pending"])


@pytest.mark.django_db
def test_a_payment_arriving_before_its_pre_checkout_answer_is_credited_and_the_late_query_refused(
    post_update, fake_bot_api, account
):
    topup = _pending(account)
    post_update(updates.successful_payment(topup.payload, currency="XTR", total_amount=385, charge_id="stxEARLY"))
    post_update(updates.pre_checkout(topup.payload, currency="XTR", total_amount=385))
    account.refresh_from_db()
    assert account.balance == Decimal(5)
    assert fake_bot_api.last("answerPreCheckoutQuery").params["ok"] == "False"


@pytest.mark.django_db(transaction=True)
def test_the_same_successful_payment_delivered_concurrently_credits_once(post_update, fake_bot_api):
    account = AccountFactory(telegram_chat_id=updates.USER_ID)
    topup = _pending(account, usd="2.50", stars=193)
    same = updates.successful_payment(topup.payload, currency="XTR", total_amount=193, charge_id="stxRACE")
    copies = [same] * 4 + [
        updates.successful_payment(topup.payload, currency="XTR", total_amount=193, charge_id="stxRACE")
        for _ in range(4)
    ]
    barrier = threading.Barrier(len(copies))
    statuses: list[int] = []

    def deliver(update: dict) -> None:
        try:
            barrier.wait()
            statuses.append(post_update(update).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(u,)) for u in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    account.refresh_from_db()
    assert statuses == [200] * 8
    assert account.balance == Decimal("2.50")
    assert ledger_sum(account) == Decimal("2.50")
    assert LedgerEntry.objects.filter(idempotency_key="telegram:stxRACE").count() == 1
    assert fake_bot_api.sent() == [TEXTS["ru"]["received"].format(amount="$2.50", balance="$2.50")]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("amount", "mismatch"),
        ("currency", "mismatch"),
        ("payload", "unknown"),
        ("payer", "other_account"),
        ("failed", "not_pending"),
    ],
)
def test_pre_checkout_refuses_what_does_not_match_the_pending_topup(post_update, fake_bot_api, lang, change, reason):
    account = AccountFactory(telegram_chat_id=updates.USER_ID, language=lang)
    topup = _pending(account)
    payload, currency, amount, user_id = topup.payload, "XTR", 385, updates.USER_ID
    if change == "amount":
        amount = 1
    elif change == "currency":
        currency = "USD"
    elif change == "payload":
        payload = "topup:forged"
    elif change == "payer":
        user_id = 999
        AccountFactory(telegram_chat_id=999, language=lang)
    else:
        TopUp.objects.filter(pk=topup.pk).update(status="failed")
    query = updates.pre_checkout(payload, currency=currency, total_amount=amount, user_id=user_id, language_code=lang)
    post_update(query)
    answer = fake_bot_api.last("answerPreCheckoutQuery")
    assert answer.params["pre_checkout_query_id"] == query["pre_checkout_query"]["id"]
    assert (answer.params["ok"], answer.params["error_message"]) == ("False", TEXTS[lang][reason])


@pytest.mark.django_db
def test_pre_checkout_from_a_user_without_an_account_is_refused_in_their_language(post_update, fake_bot_api):
    topup = _pending(AccountFactory())
    post_update(updates.pre_checkout(topup.payload, currency="XTR", total_amount=385, language_code="en"))
    answer = fake_bot_api.last("answerPreCheckoutQuery")
    assert (answer.params["ok"], answer.params["error_message"]) == ("False", TEXTS["en"]["other_account"])


@pytest.mark.django_db
def test_a_payment_for_an_unknown_invoice_is_logged_and_the_payer_sent_to_support(
    post_update, fake_bot_api, account, lang, caplog
):
    post_update(updates.successful_payment("topup:nope", currency="XTR", total_amount=10, charge_id="stxLOST"))
    assert not LedgerEntry.objects.exists()
    assert "payment stxLOST could not be credited" in caplog.text
    assert fake_bot_api.last("sendMessage").text == TEXTS[lang]["not_credited"]


@pytest.mark.django_db
def test_a_payment_that_does_not_match_its_topup_is_not_credited():
    topup = _pending(AccountFactory())
    with pytest.raises(TopUpError):
        topup_complete(payload=topup.payload, currency="XTR", total_amount=1, telegram_payment_charge_id="stx1")
    topup_complete(payload=topup.payload, currency="XTR", total_amount=385, telegram_payment_charge_id="stx2")
    with pytest.raises(TopUpError):
        topup_complete(payload=topup.payload, currency="XTR", total_amount=385, telegram_payment_charge_id="stx3")
    assert list(LedgerEntry.objects.values_list("idempotency_key", flat=True)) == ["telegram:stx2"]


@pytest.mark.django_db
def test_a_payment_arriving_for_a_failed_topup_is_still_credited():
    topup = _pending(AccountFactory())
    TopUp.objects.filter(pk=topup.pk).update(status="failed")
    outcome = topup_complete(payload=topup.payload, currency="XTR", total_amount=385, telegram_payment_charge_id="stx9")
    assert (outcome.credited, outcome.topup.status) == (True, "paid")
    topup.account.refresh_from_db()
    assert topup.account.balance == Decimal(5)
