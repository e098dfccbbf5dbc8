"""Forms behind the operators' money actions in admin; the admin views call the ledger services."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import ValidationError
from django.utils import timezone

from .models import Price, RedemptionCode, RouteCost


class OperatorMoneyForm(forms.Form):
    """Amount, memo and the idempotency key minted when the form is first shown.

    The key travels in a hidden field, so submitting the same form twice (a double click, a resent
    POST) names the same ledger entry and moves the money once.
    """

    key_prefix: ClassVar[str]

    amount = forms.DecimalField(label="Amount (USD)", max_digits=20, decimal_places=10)
    memo = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why: kept on the ledger entry and in the admin history.",
    )
    idempotency_key = forms.CharField(max_length=200, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", f"{self.key_prefix}:{uuid.uuid4()}")

    def clean_memo(self) -> str:
        memo = self.cleaned_data["memo"].strip()
        if not memo:
            raise ValidationError("Say why.")
        return memo

    def clean_idempotency_key(self) -> str:
        key = self.cleaned_data["idempotency_key"]
        if not key.startswith(f"{self.key_prefix}:"):
            raise ValidationError("This form is not valid any more; open it again.")
        return key


class TopUpForm(OperatorMoneyForm):
    key_prefix = "admin-topup"

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        if amount <= 0:
            raise ValidationError("A top-up must be a positive amount.")
        return amount


class AdjustForm(OperatorMoneyForm):
    key_prefix = "admin-adjust"

    amount = forms.DecimalField(
        label="Amount (USD)",
        max_digits=20,
        decimal_places=10,
        help_text="Signed: positive adds money, negative takes it away (never below an available $0).",
    )

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise ValidationError("An adjustment of zero changes nothing.")
        return amount


class PriceForm(forms.ModelForm):
    """A new price version; prices already in force are history and are never rewritten."""

    # Time for the operator to fill in the form, which shows "now" when it opens.
    PAST_SLACK = timedelta(minutes=15)

    what = "price"

    class Meta:
        model = Price
        fields = ("model", "prompt", "completion", "cached_prompt", "cache_write_prompt", "request", "effective_from")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in ("prompt", "completion", "cached_prompt", "cache_write_prompt", "request"):
            if (cleaned.get(name) or 0) < 0:
                self.add_error(name, f"A {self.what} cannot be negative.")
        return cleaned

    def clean_effective_from(self) -> Any:
        effective_from = self.cleaned_data["effective_from"]
        if effective_from < timezone.now() - self.PAST_SLACK:
            raise ValidationError(
                f"A {self.what} cannot start in the past; requests already served keep their {self.what}."
            )
        return effective_from


class RouteCostForm(PriceForm):
    """A new version of what a route costs us; versions in force are history and are never rewritten."""

    what = "cost"

    class Meta:
        model = RouteCost
        fields = ("route", "prompt", "completion", "cached_prompt", "cache_write_prompt", "request", "effective_from")


class RedemptionCodeForm(forms.ModelForm):
    """One redemption code: a positive amount, at least one use, an expiry (if any) in the future."""

    class Meta:
        model = RedemptionCode
        fields = ("code", "amount", "max_uses", "expires_at", "active", "memo")

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        if amount is not None and amount <= 0:
            raise ValidationError("The amount must be more than $0.")
        return amount

    def clean_max_uses(self) -> int:
        max_uses = self.cleaned_data["max_uses"]
        if max_uses is not None and max_uses < 1:
            raise ValidationError("A code must be usable at least once.")
        return max_uses

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        # Only a new code: an operator may end an existing one by moving its expiry to the past.
        if expires_at is not None and self.instance.pk is None and expires_at <= timezone.now():
            raise ValidationError("The expiry must be in the future.")
        return expires_at


class RedemptionBatchForm(forms.Form):
    """N random codes with the same amount, uses and expiry; the hidden token makes a resent form harmless."""

    MAX_CODES = 10_000

    count = forms.IntegerField(label="Number of codes", min_value=1, max_value=MAX_CODES, initial=100)
    amount = forms.DecimalField(label="Amount (USD)", max_digits=20, decimal_places=10)
    max_uses = forms.IntegerField(label="Uses per code", min_value=1, initial=1)
    expires_at = forms.SplitDateTimeField(
        label="Expires at", required=False, widget=AdminSplitDateTime, help_text="Empty: never."
    )
    prefix = forms.RegexField(
        regex=r"^[A-Z0-9-]{0,16}$",
        required=False,
        help_text="Optional, e.g. LAUNCH-: upper-case letters, digits and dashes, at most 16.",
    )
    memo = forms.CharField(max_length=200, required=False, help_text="Shown to the customer on the ledger entry.")
    batch_token = forms.RegexField(regex=r"^[0-9a-f]{32}$", widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("batch_token", uuid.uuid4().hex)

    clean_amount = RedemptionCodeForm.clean_amount
    clean_max_uses = RedemptionCodeForm.clean_max_uses

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError("The expiry must be in the future.")
        return expires_at
