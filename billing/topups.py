"""Top-ups: paid through Telegram Payments (start, check, credit once per payment, refund) or by an operator.

Money moves only through the ledger service. A payment is credited under the idempotency key
`telegram:<telegram_payment_charge_id>` and refunded under `refund:telegram:<charge id>`, so however often
Telegram repeats an update, and whoever races whom, each happens once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts.models import Account

from .models import LedgerEntry, TopUp
from .money import ZERO, usd
from .services import BillingError, InsufficientFunds, ledger_credit, ledger_refund

logger = logging.getLogger(__name__)

TELEGRAM_METHODS = (TopUp.Method.TELEGRAM_STARS, TopUp.Method.TELEGRAM_PROVIDER)

# How a payment of each method is given back to the payer; the bot registers Telegram Stars, since
# billing must not import the bot. A refunder raises when the payment could not be returned.
_refunders: dict[str, Callable[[TopUp], None]] = {}


class TopUpError(BillingError):
    """A top-up that cannot be started, credited or refunded."""


class TopUpRefused(TopUpError):
    """A payment that must not go ahead; `reason` says why, for the payer."""

    UNKNOWN = "unknown"
    NOT_PENDING = "not_pending"
    OTHER_ACCOUNT = "other_account"
    MISMATCH = "mismatch"

    def __init__(self, reason: str) -> None:
        super().__init__(f"payment refused: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """A completed top-up; `credited` is False when the payment had already been credited."""

    topup: TopUp
    credited: bool


def register_refunder(method: str, refunder: Callable[[TopUp], None]) -> None:
    """Register how payments of `method` are returned to the payer."""
    _refunders[method] = refunder


@transaction.atomic
def topup_start(*, account: Account, method: str, amount_usd: Decimal, currency: str, amount_minor: int) -> TopUp:
    """Record a pending top-up for an invoice about to be sent; its unique payload names it in the payment."""
    if method not in TELEGRAM_METHODS:
        raise ValueError(f"not a Telegram payment method: {method!r}")
    amount_usd = usd(amount_usd)
    if amount_usd <= ZERO or amount_minor <= 0:
        raise ValueError("a top-up must be positive")
    return TopUp.objects.create(
        account=account,
        method=method,
        amount_usd=amount_usd,
        currency=currency,
        amount_minor=amount_minor,
        payload=f"topup:{secrets.token_urlsafe(24)}",
    )


def topup_fail(*, topup: TopUp) -> bool:
    """Mark a pending top-up failed (its invoice never went out); False when it was no longer pending."""
    return bool(TopUp.objects.filter(pk=topup.pk, status=TopUp.Status.PENDING).update(status=TopUp.Status.FAILED))


def topup_payable(*, payload: str, account: Account | None, currency: str, total_amount: int) -> TopUp:
    """Return the pending top-up a pre-checkout query is about, or raise TopUpRefused."""
    topup = TopUp.objects.filter(payload=payload).first()
    if topup is None or topup.method not in TELEGRAM_METHODS:
        raise TopUpRefused(TopUpRefused.UNKNOWN)
    if account is None or topup.account_id != account.pk:
        raise TopUpRefused(TopUpRefused.OTHER_ACCOUNT)
    if topup.status != TopUp.Status.PENDING:
        raise TopUpRefused(TopUpRefused.NOT_PENDING)
    if (topup.currency, topup.amount_minor) != (currency, total_amount):
        raise TopUpRefused(TopUpRefused.MISMATCH)
    return topup


@transaction.atomic
def topup_complete(
    *,
    payload: str,
    currency: str,
    total_amount: int,
    telegram_payment_charge_id: str,
    provider_payment_charge_id: str = "",
) -> PaymentOutcome:
    """Credit a successful payment once per `telegram_payment_charge_id`; a replay changes nothing."""
    if not telegram_payment_charge_id:
        raise TopUpError("a payment without a charge id cannot be credited idempotently")
    # The row lock makes a racing copy of the same payment wait, then see it paid.
    topup = TopUp.objects.select_for_update().filter(payload=payload).first()
    if topup is None:
        raise TopUpError(f"payment {telegram_payment_charge_id} names no known top-up ({payload!r})")
    if topup.telegram_payment_charge_id == telegram_payment_charge_id:
        return PaymentOutcome(topup=topup, credited=False)
    if topup.telegram_payment_charge_id:
        raise TopUpError(f"top-up #{topup.pk} was already paid by {topup.telegram_payment_charge_id}")
    if (topup.currency, topup.amount_minor) != (currency, total_amount):
        raise TopUpError(f"payment {telegram_payment_charge_id} is {total_amount} {currency}, not top-up #{topup.pk}")
    # A failed top-up is credited too: the money was taken, so the invoice did reach the payer.
    entry = ledger_credit(
        account=topup.account,
        amount=topup.amount_usd,
        idempotency_key=f"telegram:{telegram_payment_charge_id}",
        reference=f"topup:{topup.pk}",
        memo=f"Telegram payment {total_amount} {currency}",
    )
    topup.status = TopUp.Status.PAID
    topup.telegram_payment_charge_id = telegram_payment_charge_id
    topup.provider_payment_charge_id = provider_payment_charge_id
    topup.ledger_entry = entry
    topup.paid_at = timezone.now()
    topup.save(
        update_fields=["status", "telegram_payment_charge_id", "provider_payment_charge_id", "ledger_entry", "paid_at"]
    )
    return PaymentOutcome(topup=topup, credited=True)


@transaction.atomic
def topup_refund(*, topup: TopUp, created_by: AbstractBaseUser | None, reason: str = "") -> TopUp:
    """Give a paid top-up back to the payer and debit it with a refund entry; refunding twice is a no-op.

    Refused (InsufficientFunds) when the available balance no longer covers it: the customer has spent it.
    """
    topup = TopUp.objects.select_for_update().get(pk=topup.pk)
    if topup.status == TopUp.Status.REFUNDED:
        return topup
    if topup.status != TopUp.Status.PAID or not topup.telegram_payment_charge_id:
        raise TopUpError(f"top-up #{topup.pk} is {topup.status}, only a paid top-up can be refunded")
    refunder = _refunders.get(topup.method)
    if refunder is None:
        raise TopUpError(f"{topup.get_method_display()} payments cannot be refunded from here")
    # Check before the payer gets the money back; the lock keeps holds from spending it meanwhile.
    account = Account.objects.select_for_update().only("balance", "held").get(pk=topup.account_id)
    if account.available < topup.amount_usd:
        raise InsufficientFunds(available=account.available, needed=topup.amount_usd)
    refunder(topup)
    entry = ledger_refund(
        account=account,
        amount=-topup.amount_usd,
        idempotency_key=f"refund:telegram:{topup.telegram_payment_charge_id}",
        reference=f"topup:{topup.pk}",
        memo=f"Refund of Telegram payment {topup.amount_minor} {topup.currency}" + (f": {reason}" if reason else ""),
        created_by=created_by,
    )
    topup.status = TopUp.Status.REFUNDED
    topup.refund_entry = entry
    topup.save(update_fields=["status", "refund_entry"])
    logger.info("refunded top-up #%s (%s USD) of account #%s", topup.pk, topup.amount_usd, topup.account_id)
    return topup


@transaction.atomic
def topup_operator(
    *,
    account: Account,
    amount: Decimal | str,
    idempotency_key: str,
    memo: str = "",
    created_by: AbstractBaseUser | None = None,
) -> LedgerEntry:
    """Credit money an operator received (a wire, an invoice) and record it as a paid top-up, once per key."""
    entry = ledger_credit(
        account=account, amount=amount, idempotency_key=idempotency_key, memo=memo, created_by=created_by
    )
    # Keyed by the entry, so a replayed credit finds its top-up instead of recording a second one.
    TopUp.objects.get_or_create(
        payload=f"operator:{entry.pk}",
        defaults={
            "account_id": entry.account_id,
            "method": TopUp.Method.OPERATOR,
            "status": TopUp.Status.PAID,
            "amount_usd": entry.amount,
            "currency": "USD",
            "amount_minor": int(entry.amount.quantize(Decimal("0.01")) * 100),
            "ledger_entry": entry,
            "paid_at": entry.created_at,
        },
    )
    return entry
