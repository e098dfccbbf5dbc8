from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import LedgerEntry, Redemption, RedemptionCode
from billing.redemptions import RedemptionRefused, code_redeem
from bot.commands import REDEEM_MISSES_PER_HOUR
from tests.factories import AccountFactory

from . import updates

REFUSALS = {
    "ru": {
        "unknown": "Такого кода нет или он больше не действует.",
        "expired": "Срок действия кода истёк.",
        "used_up": "Код больше нельзя использовать: лимит активаций исчерпан.",
        "already_redeemed": "Вы уже активировали этот код.",
    },
    "en": {
        "unknown": "This code does not exist or is no longer active.",
        "expired": "This code has expired.",
        "used_up": "This code has been used up.",
        "already_redeemed": "You have already redeemed this code.",
    },
}


@pytest.fixture(params=["ru", "en"])
def lang(request) -> str:
    return request.param


@pytest.fixture
def account(lang):
    return AccountFactory(telegram_chat_id=updates.USER_ID, language=lang)


def _redeem(post_update, fake_bot_api, text: str, lang: str) -> str:
    post_update(updates.message(text, language_code=lang))
    return fake_bot_api.last("sendMessage").text


@pytest.mark.django_db
def test_redeem_credits_the_code_as_a_promo_once_per_account(post_update, fake_bot_api, account, lang):
    code = RedemptionCode.objects.create(code="WELCOME5", amount=Decimal("5.00"), max_uses=10, memo="launch promo")
    reply = _redeem(post_update, fake_bot_api, "/redeem welcome5", lang)
    expected = {
        "ru": "Код активирован: зачислено $5.00. Баланс: $5.00.",
        "en": "Code redeemed: $5.00 added. Balance: $5.00.",
    }
    assert reply == expected[lang]
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.memo) == ("promo", Decimal("5"), "launch promo")
    assert entry.idempotency_key == f"redeem:{code.pk}:{account.pk}"

    assert _redeem(post_update, fake_bot_api, "/redeem WELCOME5", lang) == REFUSALS[lang]["already_redeemed"]
    account.refresh_from_db()
    assert account.balance == Decimal("5")


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["unknown", "inactive", "expired", "used_up"])
def test_redeem_refuses_codes_that_cannot_be_used(post_update, fake_bot_api, account, lang, case):
    code = RedemptionCode.objects.create(code="PROMO", amount=Decimal("1"), max_uses=1)
    if case == "inactive":
        RedemptionCode.objects.filter(pk=code.pk).update(active=False)
    elif case == "expired":
        an_hour_ago = timezone.now() - timedelta(hours=1)
        RedemptionCode.objects.filter(pk=code.pk).update(
            created_at=an_hour_ago, expires_at=timezone.now() - timedelta(seconds=1)
        )
    elif case == "used_up":
        code_redeem(code="PROMO", account=AccountFactory())
    text = "/redeem NOPE" if case == "unknown" else "/redeem PROMO"
    expected = REFUSALS[lang]["unknown" if case == "inactive" else case]
    assert _redeem(post_update, fake_bot_api, text, lang) == expected
    account.refresh_from_db()
    assert account.balance == Decimal(0)


@pytest.mark.django_db
def test_redeem_without_a_code_explains_the_syntax(post_update, fake_bot_api, account, lang):
    expected = {"ru": "Отправьте код так: /redeem КОД", "en": "Send the code like this: /redeem CODE"}[lang]
    assert _redeem(post_update, fake_bot_api, "/redeem", lang) == expected


@pytest.mark.django_db
def test_guessing_codes_is_stopped_after_a_few_misses(post_update, fake_bot_api, account, lang):
    RedemptionCode.objects.create(code="REAL", amount=Decimal("1"))
    for n in range(REDEEM_MISSES_PER_HOUR):
        _redeem(post_update, fake_bot_api, f"/redeem GUESS{n}", lang)
    expected = {"ru": "Слишком много попыток. Попробуйте через час.", "en": "Too many attempts. Try again in an hour."}
    assert _redeem(post_update, fake_bot_api, "/redeem REAL", lang) == expected[lang]
    assert not Redemption.objects.exists()


@pytest.mark.django_db
def test_a_code_that_exists_only_in_another_case_is_found_and_the_exact_one_wins():
    exact = RedemptionCode.objects.create(code="Promo", amount=Decimal("2"), max_uses=5)
    RedemptionCode.objects.create(code="PROMO", amount=Decimal("3"))
    assert code_redeem(code="Promo", account=AccountFactory()).code == exact
    assert code_redeem(code="promo", account=AccountFactory()).code.code == "Promo"


def _race(n: int, redeem) -> list[str]:
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            redeem(i)
            outcomes.append("credited")
        except RedemptionRefused as refused:
            outcomes.append(refused.reason)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


@pytest.mark.django_db(transaction=True)
def test_racing_accounts_never_redeem_a_code_more_than_its_uses():
    RedemptionCode.objects.create(code="RACE3", amount=Decimal("1.5"), max_uses=3)
    accounts = [AccountFactory() for _ in range(8)]
    outcomes = _race(8, lambda i: code_redeem(code="RACE3", account=accounts[i]))
    assert outcomes == ["credited"] * 3 + ["used_up"] * 5
    assert Redemption.objects.count() == 3
    assert sorted(LedgerEntry.objects.values_list("amount", flat=True)) == [Decimal("1.5")] * 3


@pytest.mark.django_db(transaction=True)
def test_one_account_racing_itself_redeems_once():
    RedemptionCode.objects.create(code="ONCE", amount=Decimal("2"), max_uses=100)
    account = AccountFactory()
    outcomes = _race(6, lambda i: code_redeem(code="ONCE", account=account))
    assert outcomes == ["already_redeemed"] * 5 + ["credited"]
    account.refresh_from_db()
    assert account.balance == Decimal("2")


@pytest.mark.django_db
def test_a_broken_code_from_before_the_database_checked_gets_a_polite_answer(post_update, fake_bot_api, account, lang):
    # Written the way a code could be before the check constraint existed.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE billing_redemptioncode DROP CONSTRAINT redemption_code_amount_positive")
    RedemptionCode.objects.create(code="BROKEN", amount=Decimal("-5"), max_uses=1)

    response = post_update(updates.message("/redeem BROKEN", language_code=lang))

    assert response.status_code == 200
    reply = fake_bot_api.last("sendMessage").text
    expected = {
        "ru": "Этот код нельзя активировать. Пожалуйста, напишите в поддержку.",
        "en": "This code cannot be redeemed. Please contact support.",
    }
    assert reply == expected[lang]
    assert not LedgerEntry.objects.exists()
    assert not Redemption.objects.exists()
