"""/topup and Telegram Payments: invoice, pre-checkout answer, crediting on successful_payment, refunds."""

from __future__ import annotations

import logging
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from django.utils.translation import gettext as _
from telebot.types import LabeledPrice

from accounts.models import Account
from billing.models import TopUp
from billing.topups import TopUpError, TopUpRefused, topup_complete, topup_fail, topup_payable, topup_start
from core.usd import usd_micro

from . import telegram
from .i18n import language_override
from .models import BotSettings
from .selectors import account_for_chat
from .updates import Callback, Payment, PreCheckout, Sender

logger = logging.getLogger(__name__)

STARS = "XTR"
PRESET_AMOUNTS_USD = (Decimal(5), Decimal(10), Decimal(25), Decimal(50))
# Currencies whose smallest unit is the unit itself (Telegram's currencies.json, "exp": 0).
_NO_MINOR_UNIT = {"CLP", "ISK", "JPY", "KRW", "PYG", "UGX", "VND"}


def provider_token() -> str:
    """The payment provider token from BotFather; empty means invoices are in Stars."""
    return getattr(settings, "TELEGRAM_PAYMENT_PROVIDER_TOKEN", "")


def invoice_terms(amount_usd: Decimal, bot_settings: BotSettings) -> tuple[str, str, int]:
    """Return (method, currency, amount in the smallest unit) an invoice for `amount_usd` asks for.

    Rounded up: the payer never pays less than what is credited.
    """
    if provider_token():
        currency = bot_settings.provider_currency.upper()
        exponent = 0 if currency in _NO_MINOR_UNIT else 2
        units = amount_usd / bot_settings.usd_per_provider_unit * (10**exponent)
        return TopUp.Method.TELEGRAM_PROVIDER, currency, int(units.to_integral_value(rounding=ROUND_CEILING))
    stars = (amount_usd / bot_settings.usd_per_star).to_integral_value(rounding=ROUND_CEILING)
    return TopUp.Method.TELEGRAM_STARS, STARS, int(stars)


def parse_amount(text: str) -> Decimal | None:
    """Read a USD amount such as `5`, `$7.50` or `7,50`, rounded to cents; None when it is not one."""
    try:
        amount = Decimal(text.strip().lstrip("$").replace(",", "."))
    except InvalidOperation:
        return None
    if not amount.is_finite():
        return None
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _presets(bot_settings: BotSettings) -> list[list[tuple[str, str]]]:
    amounts = [a for a in PRESET_AMOUNTS_USD if bot_settings.min_topup_usd <= a <= bot_settings.max_topup_usd]
    return [[(usd_micro(a), f"topup:{a}") for a in amounts]]


def topup(sender: Sender, account: Account, args: str) -> None:
    """Send an invoice for the amount given, or offer amounts to choose from."""
    bot_settings = BotSettings.load()
    bounds = {"min": usd_micro(bot_settings.min_topup_usd), "max": usd_micro(bot_settings.max_topup_usd)}
    if not args:
        text = _("How much do you want to add? Choose an amount or send /topup AMOUNT in USD, from %(min)s to %(max)s.")
        telegram.send(sender.chat_id, text % bounds, _presets(bot_settings))
        return
    amount = parse_amount(args.split()[0])
    if amount is None or not bot_settings.min_topup_usd <= amount <= bot_settings.max_topup_usd:
        text = _("Send the amount in USD from %(min)s to %(max)s, for example /topup 10.")
        telegram.send(sender.chat_id, text % bounds)
        return
    send_invoice(sender.chat_id, account, amount, bot_settings)


def on_callback(callback: Callback, account: Account, amount_text: str) -> None:
    """A preset amount was chosen: send its invoice."""
    bot_settings = BotSettings.load()
    amount = parse_amount(amount_text)
    telegram.answer_callback(callback.query_id)
    if amount is None or not bot_settings.min_topup_usd <= amount <= bot_settings.max_topup_usd:
        return
    send_invoice(callback.sender.chat_id, account, amount, bot_settings)


def send_invoice(chat_id: int, account: Account, amount_usd: Decimal, bot_settings: BotSettings) -> TopUp:
    """Record a pending top-up and send its invoice."""
    method, currency, amount_minor = invoice_terms(amount_usd, bot_settings)
    pending = topup_start(
        account=account, method=method, amount_usd=amount_usd, currency=currency, amount_minor=amount_minor
    )
    amount = usd_micro(amount_usd)
    try:
        telegram.client().send_invoice(
            chat_id,
            title=_("ML Router balance"),
            description=_("%(amount)s on the balance of ML Router account #%(id)s.")
            % {"amount": amount, "id": account.pk},
            invoice_payload=pending.payload,
            provider_token="" if method == TopUp.Method.TELEGRAM_STARS else provider_token(),
            currency=currency,
            prices=[LabeledPrice(_("Top-up %(amount)s") % {"amount": amount}, amount_minor)],
        )
    except telegram.ApiError:
        logger.exception("sendInvoice failed for top-up #%s", pending.pk)
        topup_fail(topup=pending)
        telegram.send(chat_id, _("The payment could not be started. Please try again later."))
    return pending


def on_pre_checkout(query: PreCheckout) -> None:
    """Say yes only to a pending top-up of this payer, for exactly its currency and amount."""
    account = account_for_chat(query.user_id)
    with language_override(query.language_code, account):
        try:
            topup_payable(
                payload=query.payload, account=account, currency=query.currency, total_amount=query.total_amount
            )
        except TopUpRefused as refused:
            logger.info("pre-checkout %s refused: %s", query.query_id, refused.reason)
            messages = {
                TopUpRefused.UNKNOWN: _("This invoice is unknown. Request a new one with /topup."),
                TopUpRefused.NOT_PENDING: _(
                    "This invoice was already paid or has expired. Request a new one with /topup."
                ),
                TopUpRefused.OTHER_ACCOUNT: _("This invoice belongs to another account."),
                TopUpRefused.MISMATCH: _("The invoice amount has changed. Request a new one with /topup."),
            }
            telegram.client().answer_pre_checkout_query(
                query.query_id, ok=False, error_message=messages[refused.reason]
            )
            return
    telegram.client().answer_pre_checkout_query(query.query_id, ok=True)


def on_payment(payment: Payment) -> None:
    """Credit the payment once, however often Telegram delivers it, and confirm it to the payer."""
    try:
        outcome = topup_complete(
            payload=payment.payload,
            currency=payment.currency,
            total_amount=payment.total_amount,
            telegram_payment_charge_id=payment.telegram_charge_id,
            provider_payment_charge_id=payment.provider_charge_id,
        )
    except TopUpError:
        # The payer's money was taken: an operator must credit or refund it by hand.
        logger.exception("payment %s could not be credited", payment.telegram_charge_id)
        telegram.send(
            payment.sender.chat_id,
            _("We received your payment but could not credit it automatically. Please contact /paysupport."),
        )
        return
    if not outcome.credited:
        return
    entry = outcome.topup.ledger_entry
    text = _("Payment received: %(amount)s added. Balance: %(balance)s.") % {
        "amount": usd_micro(entry.amount),
        "balance": usd_micro(entry.balance_after),
    }
    telegram.send(payment.sender.chat_id, text)


def refund_star_payment(topup: TopUp) -> None:
    """Return a Stars payment to its payer through the Bot API (the billing refunder for Stars)."""
    user_id = topup.account.telegram_chat_id
    if user_id is None:
        raise TopUpError(f"account #{topup.account_id} has no Telegram chat to refund to")
    try:
        telegram.client().refund_star_payment(user_id, topup.telegram_payment_charge_id)
    except telegram.ApiError as error:
        # Refunded at Telegram by an earlier attempt whose ledger entry was then rolled back.
        if "CHARGE_ALREADY_REFUNDED" not in str(getattr(error, "description", "")):
            raise TopUpError(f"Telegram refused the refund: {error}") from error
        logger.warning("top-up #%s was already refunded at Telegram", topup.pk)
