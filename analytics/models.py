"""Rollups: usage and money summed per hour and per day, so the console never scans generations or the ledger.

Each period's rows are recomputed whole from the source rows (`analytics/rollups.py`), never incremented,
so running the refresh again cannot count anything twice.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

# Upper bounds (ms) of the latency histogram's buckets; a bucket with `le_ms` NULL holds the slower rest.
# Changing them needs the rollups recomputed (`manage.py analytics_refresh --reopen`).
LATENCY_BOUNDS_MS = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 15000, 30000, 60000)


def _money(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=24, decimal_places=10, default=Decimal(0), **kwargs)


class RollupPeriod(models.Model):
    """One hour (usage) or one day (ledger) of a series, and whether its rollup rows can still change.

    A period is final once it ended more than the grace time ago and none of its generations was pending
    when it was last computed; a final period is never recomputed.
    """

    class Series(models.TextChoices):
        USAGE = "usage", "usage (hourly)"
        LEDGER = "ledger", "ledger (daily)"

    series = models.CharField(max_length=16, choices=Series.choices)
    start = models.DateTimeField()
    pending = models.PositiveIntegerField(default=0, help_text="Generations still pending at the last computation.")
    final = models.BooleanField(default=False)
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "start"], name="rollup_period_unique")]
        indexes = [models.Index(fields=["series", "start"], condition=models.Q(final=False), name="rollup_period_open")]

    def __str__(self) -> str:
        return f"{self.series} {self.start:%Y-%m-%d %H:%M}"


class UsageSums(models.Model):
    """The sums every usage rollup keeps."""

    requests = models.PositiveIntegerField(default=0, help_text="Finished generations: completed, cancelled, failed.")
    errors = models.PositiveIntegerField(default=0, help_text="Failed generations.")
    cancelled = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    revenue = _money(help_text="Charged to the customers.")
    upstream_cost = _money(help_text="Paid to the providers, where known.")
    costed = models.PositiveIntegerField(default=0, help_text="Generations whose upstream cost is known.")
    margin = _money(help_text="Revenue − upstream cost, over the generations whose upstream cost is known.")
    latency_ms_sum = models.BigIntegerField(default=0)
    latency_count = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class ModelFigures(UsageSums):
    """The usage sums per model, provider and surface."""

    model = models.ForeignKey("completions.Model", on_delete=models.PROTECT, related_name="+", db_index=False)
    provider = models.ForeignKey(
        "completions.Provider", on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    surface = models.CharField(max_length=32)

    class Meta:
        abstract = True


class UsageFigures(ModelFigures):
    """The usage sums per account, key and app too: the hourly and the daily rollups."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+", db_index=False)
    api_key = models.ForeignKey("accounts.ApiKey", on_delete=models.PROTECT, related_name="+", db_index=False)
    app = models.CharField(max_length=200, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.requests} requests of model #{self.model_id} on account #{self.account_id}"


class HourlyUsage(UsageFigures):
    """Finished generations of one hour (by `started_at`) and one combination of dimensions."""

    hour = models.DateTimeField()

    class Meta:
        verbose_name = "usage and revenue"
        verbose_name_plural = "usage and revenue"
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "account", "api_key", "model", "provider", "surface", "app"],
                name="hourly_usage_unique",
                nulls_distinct=False,
            )
        ]
        indexes = [models.Index(fields=["account", "hour"], name="hourly_usage_account")]


# The per-key rows multiply with keys × apps × accounts; most of the page needs none of those dimensions.
# The hour buckets read these two coarse hourly rollups, rebuilt with each hour's rows (`analytics/rollups.py`).
class HourlyModelUsage(ModelFigures):
    """The hourly sums per model, provider and surface only: the 24 h page's totals, series and model breakdowns."""

    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "model", "provider", "surface"], name="hourly_model_usage_unique", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return f"{self.requests} requests of model #{self.model_id} at {self.hour:%Y-%m-%d %H:%M}"


class HourlyAccountUsage(UsageSums):
    """The hourly sums per account only: the 24 h page's top accounts."""

    hour = models.DateTimeField()
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+", db_index=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hour", "account"], name="hourly_account_usage_unique")]

    def __str__(self) -> str:
        return f"{self.requests} requests of account #{self.account_id} at {self.hour:%Y-%m-%d %H:%M}"


class DailyUsage(UsageFigures):
    """The same sums per UTC day, summed from that day's hourly rows; long ranges read these."""

    day = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "account", "api_key", "model", "provider", "surface", "app"],
                name="daily_usage_unique",
                nulls_distinct=False,
            )
        ]
        indexes = [models.Index(fields=["account", "day"], name="daily_usage_account")]


# The same two coarse rollups per UTC day: long ranges read these, rebuilt with each day's rows.
class DailyModelUsage(ModelFigures):
    """The daily sums per model, provider and surface only: the page's totals, series and model breakdowns."""

    day = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "model", "provider", "surface"], name="daily_model_usage_unique", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return f"{self.requests} requests of model #{self.model_id} on {self.day:%Y-%m-%d}"


class DailyAccountUsage(UsageSums):
    """The daily sums per account only: the page's top accounts."""

    day = models.DateTimeField()
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+", db_index=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "account"], name="daily_account_usage_unique")]

    def __str__(self) -> str:
        return f"{self.requests} requests of account #{self.account_id} on {self.day:%Y-%m-%d}"


class LatencyFigures(models.Model):
    """How many finished generations of a model and provider took at most `le_ms` (and more than the bound below)."""

    model = models.ForeignKey("completions.Model", on_delete=models.PROTECT, related_name="+", db_index=False)
    provider = models.ForeignKey(
        "completions.Provider", on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    surface = models.CharField(max_length=32)
    le_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: slower than the last bound.")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.count} of model #{self.model_id} within {self.le_ms or '∞'} ms"


class HourlyLatency(LatencyFigures):
    hour = models.DateTimeField(db_index=True)


class DailyLatency(LatencyFigures):
    day = models.DateTimeField(db_index=True)


class DailyLedger(models.Model):
    """Ledger entries of one UTC day, one account and one kind other than charges (charges are in the usage)."""

    day = models.DateTimeField()
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+", db_index=False)
    kind = models.CharField(max_length=16)
    entries = models.PositiveIntegerField(default=0)
    amount = _money(help_text="Signed, as in the ledger.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "account", "kind"], name="daily_ledger_unique")]
        indexes = [models.Index(fields=["account", "kind"], name="daily_ledger_account")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} on account #{self.account_id}, {self.day:%Y-%m-%d}"
