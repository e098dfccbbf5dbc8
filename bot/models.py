"""Bot-only state: the operators' payment settings and the updates already handled."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone


def _money(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=20, decimal_places=10, **kwargs)


class BotSettings(models.Model):
    """The bot's payment settings, one row that operators edit in admin.

    A top-up is asked for in USD; these say what one Star, or one unit of the provider's currency, is
    worth in USD, and so how much an invoice asks for.
    """

    usd_per_star = _money(default=Decimal("0.013"), help_text="USD credited per Telegram Star (XTR).")
    provider_currency = models.CharField(
        max_length=3, default="USD", help_text="ISO 4217 currency of invoices paid through the provider token."
    )
    usd_per_provider_unit = _money(
        default=Decimal(1), help_text="USD credited per unit (not minor unit) of the provider currency."
    )
    min_topup_usd = _money(default=Decimal(1))
    max_topup_usd = _money(default=Decimal(100))
    support_contact = models.CharField(
        max_length=200, blank=True, help_text="Shown by /paysupport, e.g. @mlrouter_support or an e-mail."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "bot settings"
        verbose_name_plural = "bot settings"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="bot_settings_singleton"),
            models.CheckConstraint(
                condition=models.Q(usd_per_star__gt=0, usd_per_provider_unit__gt=0), name="bot_settings_rates_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(min_topup_usd__gt=0, max_topup_usd__gte=models.F("min_topup_usd")),
                name="bot_settings_topup_bounds",
            ),
        ]

    def __str__(self) -> str:
        return "Bot settings"

    def save(self, *args, **kwargs) -> None:
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> BotSettings:
        """Return the settings row, created with the defaults on first use."""
        return cls.objects.get_or_create(pk=1)[0]


class ProcessedUpdate(models.Model):
    """A Telegram update this bot has taken on, so a redelivered copy is ignored.

    Telegram numbers updates sequentially but picks a random start after a week without updates, so an
    id is only trusted as a duplicate within DUPLICATE_WINDOW (see bot.services.update_claim).
    """

    update_id = models.BigIntegerField(primary_key=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"update {self.update_id}"
