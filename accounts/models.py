"""Paying customers and their API keys."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


def _default_threshold() -> Decimal:
    return settings.LOW_BALANCE_THRESHOLD_USD


class Account(models.Model):
    """A paying customer: one prepaid USD balance shared by all of its API keys.

    `balance` is the cached sum of the account's ledger and `held` the cached sum of its open holds;
    only billing.services changes either, in the same transaction that appends a ledger entry or
    places/settles/releases a hold. Django's User is for operators only.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        SUSPENDED = "suspended", "suspended"

    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    telegram_chat_id = models.BigIntegerField(null=True, blank=True, unique=True)
    telegram_username = models.CharField(max_length=64, blank=True)
    language = models.CharField(max_length=8, default="ru", help_text="Language of bot messages and alerts.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    low_balance_threshold = models.DecimalField(
        max_digits=20,
        decimal_places=10,
        default=_default_threshold,
        help_text="A low-balance alert is sent when the available balance drops below this (USD).",
    )
    balance = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal(0), editable=False)
    held = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal(0), editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(held__gte=0), name="account_held_not_negative"),
        ]
        permissions = [
            ("suspend_account", "Can suspend and reactivate an account"),
            ("export_account", "Can export accounts as CSV"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def available(self) -> Decimal:
        """Balance minus open holds: what new requests may still spend."""
        return self.balance - self.held

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class ApiKey(models.Model):
    """A secret `orb_live_…` key. Only its SHA-256 hash and a short visible prefix are stored."""

    class SpendPeriod(models.TextChoices):
        NONE = "none", "no reset"
        DAILY = "daily", "daily"
        WEEKLY = "weekly", "weekly"
        MONTHLY = "monthly", "monthly"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=24, help_text="The first characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    rpm_limit = models.PositiveIntegerField(help_text="Requests per minute.")
    spend_limit = models.DecimalField(
        max_digits=20, decimal_places=10, null=True, blank=True, help_text="USD per period; empty: no limit."
    )
    spend_period = models.CharField(max_length=16, choices=SpendPeriod.choices, default=SpendPeriod.NONE)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="The key stops working then; empty: never.")
    # Public model ids, not foreign keys: `accounts` does not import the catalog, and a renamed or removed
    # model simply stops matching.
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Public ids of the models this key may use; empty: every model."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-id"]
        permissions = [
            ("revoke_apikey", "Can revoke an API key"),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… {self.name}".strip()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def clean(self) -> None:
        if self._state.adding and self.expires_at is not None and self.expires_at <= timezone.now():
            raise ValidationError({"expires_at": "A new key's expiry must be in the future."})

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()
