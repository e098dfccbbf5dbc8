"""Redemption codes: each account redeems a code at most once, and a code is used at most `max_uses` times."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from accounts.models import Account

from .models import LedgerEntry, Redemption, RedemptionCode
from .services import BillingError, ledger_credit

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser


class RedemptionRefused(BillingError):
    """A code that cannot be redeemed; `reason` says why, for the customer."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED_UP = "used_up"
    ALREADY_REDEEMED = "already_redeemed"
    # A code that cannot credit anything (written before the database checked amounts): support must look.
    INVALID = "invalid"

    def __init__(self, reason: str) -> None:
        super().__init__(f"code refused: {reason}")
        self.reason = reason


@transaction.atomic
def code_redeem(*, code: str, account: Account) -> Redemption:
    """Credit a code's amount to an account as a promo entry, or raise RedemptionRefused."""
    code = code.strip()
    if not code:
        raise RedemptionRefused(RedemptionRefused.UNKNOWN)
    # Locking the code serialises its redemptions, so counting uses below is exact under races.
    found = RedemptionCode.objects.select_for_update().filter(code__iexact=code, active=True).order_by("id")
    redemption_code = next((c for c in found if c.code == code), None) or next(iter(found), None)
    if redemption_code is None:
        raise RedemptionRefused(RedemptionRefused.UNKNOWN)
    if redemption_code.amount <= 0:
        raise RedemptionRefused(RedemptionRefused.INVALID)
    if redemption_code.expires_at is not None and redemption_code.expires_at <= timezone.now():
        raise RedemptionRefused(RedemptionRefused.EXPIRED)
    if Redemption.objects.filter(code=redemption_code, account=account).exists():
        raise RedemptionRefused(RedemptionRefused.ALREADY_REDEEMED)
    if Redemption.objects.filter(code=redemption_code).count() >= redemption_code.max_uses:
        raise RedemptionRefused(RedemptionRefused.USED_UP)
    entry = ledger_credit(
        account=account,
        amount=redemption_code.amount,
        kind=LedgerEntry.Kind.PROMO,
        idempotency_key=f"redeem:{redemption_code.pk}:{account.pk}",
        reference=f"code:{redemption_code.code}",
        memo=redemption_code.memo or f"Redemption code {redemption_code.code}",
    )
    return Redemption.objects.create(code=redemption_code, account=account, ledger_entry=entry)


# Unambiguous when read aloud or typed from a screen: no 0/O, 1/I/L.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 12


def codes_create_batch(
    *,
    count: int,
    amount: Decimal,
    max_uses: int,
    expires_at: datetime | None,
    memo: str = "",
    prefix: str = "",
    created_by: AbstractBaseUser | None = None,
) -> list[RedemptionCode]:
    """Create `count` random codes with the same amount, uses and expiry, validated like a single code."""
    prototype = RedemptionCode(amount=amount, max_uses=max_uses, expires_at=expires_at, memo=memo, code="X")
    prototype.full_clean(exclude=["code"])
    made = [
        RedemptionCode(
            code=prefix + "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH)),
            amount=amount,
            max_uses=max_uses,
            expires_at=expires_at,
            memo=memo,
            created_by=created_by,
        )
        for _ in range(count)
    ]
    # 31^12 codes: a collision is as likely as guessing one, and the unique index would refuse the batch.
    with transaction.atomic():
        return RedemptionCode.objects.bulk_create(made)
