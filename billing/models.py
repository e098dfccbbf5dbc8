"""Prices, route costs, the ledger, holds, top-ups, redemption codes, alerts and reconciliation runs."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from core.usd import usd_exact


def _money(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=20, decimal_places=10, **kwargs)


class Price(models.Model):
    """One version of a model's price, in USD per 1M tokens, in force from `effective_from` on.

    Versions are never edited: a change is a new row. A request is charged with the version that was
    in force when it started (the Generation keeps a reference to it).
    """

    model = models.ForeignKey("completions.Model", on_delete=models.PROTECT, related_name="prices")
    prompt = _money(help_text="USD per 1M prompt tokens.")
    completion = _money(help_text="USD per 1M completion tokens.")
    cached_prompt = _money(null=True, blank=True, help_text="USD per 1M cached prompt tokens; empty: as prompt.")
    cache_write_prompt = _money(
        null=True, blank=True, help_text="USD per 1M prompt tokens written to the cache; empty: as prompt."
    )
    request = _money(default=Decimal(0), help_text="USD per request.")
    effective_from = models.DateTimeField(default=timezone.now, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "effective_from"], name="price_one_version_per_instant"),
            models.CheckConstraint(
                condition=models.Q(prompt__gte=0, completion__gte=0, request__gte=0), name="price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        rates = f"{usd_exact(self.prompt)} / {usd_exact(self.completion)} per 1M"
        return f"{self.model.public_id}: {rates} from {self.effective_from:%Y-%m-%d %H:%M}"


class RouteCost(models.Model):
    """One version of what a provider charges us for a route, in USD per 1M tokens, from `effective_from` on.

    Like `Price`, versions are never edited: a change is a new row. A generation records the upstream cost
    it was computed at (where the provider reports none), so deleting a route may take its versions along.
    """

    route = models.ForeignKey("completions.Route", on_delete=models.CASCADE, related_name="costs")
    prompt = _money(help_text="USD per 1M prompt tokens.")
    completion = _money(help_text="USD per 1M completion tokens.")
    cached_prompt = _money(null=True, blank=True, help_text="USD per 1M cached prompt tokens; empty: as prompt.")
    cache_write_prompt = _money(
        null=True, blank=True, help_text="USD per 1M prompt tokens written to the cache; empty: as prompt."
    )
    request = _money(default=Decimal(0), help_text="USD per request.")
    effective_from = models.DateTimeField(default=timezone.now, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["route", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["route", "effective_from"], name="route_cost_one_version_per_instant"),
            models.CheckConstraint(
                condition=models.Q(prompt__gte=0, completion__gte=0, request__gte=0), name="route_cost_not_negative"
            ),
        ]

    def __str__(self) -> str:
        rates = f"{usd_exact(self.prompt)} / {usd_exact(self.completion)} per 1M"
        return f"{self.route}: {rates} from {self.effective_from:%Y-%m-%d %H:%M}"


class LedgerEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Ledger entries are append-only: correct a mistake with a new entry.")

    def delete(self):
        raise TypeError("Ledger entries are append-only: correct a mistake with a new entry.")


class LedgerEntry(models.Model):
    """One movement of money on an account. Append-only.

    The ledger is the truth about money: an account's balance is the sum of its entries, and
    `balance_after` records the running total. Nothing updates or deletes an entry (the model, the
    queryset and a database trigger all refuse); a mistake is corrected by a new entry. Every entry has
    a unique idempotency key, so a replayed credit, charge or refund is recorded once.
    """

    class Kind(models.TextChoices):
        TOPUP = "topup", "top-up"
        CHARGE = "charge", "charge"
        REFUND = "refund", "refund"
        ADJUSTMENT = "adjustment", "adjustment"
        PROMO = "promo", "promo"

    # Every charge writes a row here: only the indexes that reads need (see Meta), each one is written
    # on every request. The account's is the (account, -id) index.
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="ledger_entries", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = _money(help_text="Signed: credits are positive, charges negative.")
    balance_after = _money()
    reference = models.CharField(max_length=200, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    memo = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = LedgerEntryQuerySet.as_manager()
    # Set on the instance a service returns when its idempotency key had already been used.
    replayed = False
    # Set on a newly appended entry: its account as locked and updated by the service.
    account_after = None

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering = ["-id"]
        permissions = [
            ("topup_account", "Can top up an account"),
            ("adjust_balance", "Can adjust an account's balance"),
            ("export_ledgerentry", "Can export ledger entries as CSV"),
        ]
        indexes = [
            models.Index(fields=["account", "-id"]),
            # A plain btree: `db_index` on a text field would add a second, LIKE-only index.
            models.Index(fields=["reference"], name="ledger_reference"),
            # Everything but charges, by time: the analytics' daily top-ups and refunds read only these.
            models.Index(fields=["created_at"], condition=~models.Q(kind="charge"), name="ledger_credits_created"),
            # Credits, refunds and adjustments (a charge is not written here): the admin searches their memos.
            models.Index(fields=["-id"], condition=~models.Q(kind="charge"), name="ledger_not_charge"),
        ]

    def __str__(self) -> str:
        sign = "+" if self.amount > 0 else ""
        return f"{self.get_kind_display()} {sign}{usd_exact(self.amount)} on #{self.account_id}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise TypeError("Ledger entries are append-only: correct a mistake with a new entry.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Ledger entries are append-only: correct a mistake with a new entry.")


class Hold(models.Model):
    """Funds reserved for one in-flight request: its worst-case cost.

    Placed before the request goes upstream, then settled (a charge of the real cost) or released,
    exactly once. `Account.held` is the sum of open holds, so available = balance - held never lets
    concurrent requests spend the same money twice. A hold past `expires_at` belongs to a request whose
    worker died; reconciliation settles or releases it.
    """

    class Status(models.TextChoices):
        OPEN = "open", "open"
        SETTLED = "settled", "settled"
        RELEASED = "released", "released"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="holds")
    amount = _money()
    reference = models.CharField(max_length=200, unique=True, help_text="The generation id.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=200, blank=True)
    # Never looked up from the entry's side (nor is a ledger entry ever deleted): no index to write.
    ledger_entry = models.ForeignKey(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )

    # Set on a hold `hold_place` just placed in one statement: the account's available balance right after.
    available_after: Decimal | None = None

    class Meta:
        permissions = [
            ("release_hold", "Can release an open hold"),
        ]
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["expires_at"], condition=models.Q(status="open"), name="hold_open_expiry"),
        ]

    def __str__(self) -> str:
        return f"hold {usd_exact(self.amount)} for {self.reference} ({self.status})"


class TopUp(models.Model):
    """A payment that credits the balance once it is paid (Telegram Payments, or an operator)."""

    class Method(models.TextChoices):
        TELEGRAM_STARS = "telegram_stars", "Telegram Stars"
        TELEGRAM_PROVIDER = "telegram_provider", "Telegram payment provider"
        OPERATOR = "operator", "operator"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        PAID = "paid", "paid"
        REFUNDED = "refunded", "refunded"
        FAILED = "failed", "failed"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="topups")
    method = models.CharField(max_length=32, choices=Method.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    amount_usd = _money()
    currency = models.CharField(max_length=8, help_text="XTR for Stars, or an ISO currency code.")
    amount_minor = models.BigIntegerField(help_text="In the currency's smallest unit (Stars are whole).")
    payload = models.CharField(max_length=128, unique=True)
    telegram_payment_charge_id = models.CharField(max_length=200, unique=True, null=True, blank=True)
    provider_payment_charge_id = models.CharField(max_length=200, blank=True)
    ledger_entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    refund_entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [
            ("refund_topup", "Can refund a top-up"),
            ("export_topup", "Can export top-ups as CSV"),
        ]
        verbose_name = "top-up"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"top-up {usd_exact(self.amount_usd)} for #{self.account_id} ({self.status})"


class RedemptionCode(models.Model):
    """A code that operators hand out; each account may redeem it once, up to `max_uses` in all."""

    code = models.CharField(max_length=64, unique=True)
    amount = _money()
    max_uses = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    memo = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="redemption_code_amount_positive"),
            models.CheckConstraint(condition=models.Q(max_uses__gte=1), name="redemption_code_used_at_least_once"),
            # "In the future" is checked when the code is made (`clean`); the database keeps it after creation.
            models.CheckConstraint(
                condition=models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=models.F("created_at")),
                name="redemption_code_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        errors = {}
        if self.amount is not None and self.amount <= 0:
            errors["amount"] = "The amount must be more than $0."
        if self.max_uses is not None and self.max_uses < 1:
            errors["max_uses"] = "A code must be usable at least once."
        if self._state.adding and self.expires_at is not None and self.expires_at <= timezone.now():
            errors["expires_at"] = "The expiry must be in the future."
        if errors:
            raise ValidationError(errors)


class Redemption(models.Model):
    """One account's use of a redemption code, and the promo entry it credited."""

    code = models.ForeignKey(RedemptionCode, on_delete=models.PROTECT, related_name="redemptions")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="redemptions")
    ledger_entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["code", "account"], name="redeem_once_per_account")]

    def __str__(self) -> str:
        return f"{self.code.code} by #{self.account_id}"


class LowBalanceAlert(models.Model):
    """A warning that an account's available balance fell below its threshold, on one channel.

    `crossing` names the downward crossing it is about, so one crossing is alerted once per channel.
    """

    class Channel(models.TextChoices):
        TELEGRAM = "telegram", "Telegram"
        EMAIL = "email", "e-mail"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="low_balance_alerts")
    crossing = models.CharField(max_length=100)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    balance = _money()
    threshold = _money()
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [
            ("retry_lowbalancealert", "Can retry the delivery of an alert"),
        ]
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "crossing", "channel"], name="alert_once_per_crossing"),
        ]

    def __str__(self) -> str:
        return f"low balance #{self.account_id} via {self.channel} ({self.status})"


class ReconciliationRun(models.Model):
    """One pass of the usage reconciliation, with its counts; its findings hang off it."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        CLEAN = "clean", "clean"
        FINDINGS = "findings", "findings"
        FAILED = "failed", "failed"

    class Scope(models.TextChoices):
        FULL = "full", "full audit"
        INCREMENTAL = "incremental", "since the checkpoint"
        LOOKBACK = "lookback", "generations of a lookback window"

    trigger = models.CharField(max_length=32, default="schedule")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.FULL)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The checkpoint this run leaves when it completes (full and incremental runs): every ledger entry up to
    # `ledger_mark` is summed in LedgerCheckpoint, and every hold from `hold_mark` on is the next run's.
    ledger_mark = models.BigIntegerField(null=True, blank=True)
    hold_mark = models.BigIntegerField(null=True, blank=True)

    class Meta:
        permissions = [
            ("run_reconciliation", "Can run reconciliation"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"reconciliation #{self.pk} ({self.status})"


class LedgerCheckpoint(models.Model):
    """An account's ledger sum up to the last completed reconciliation's `ledger_mark`.

    Lets an incremental run prove a balance from this total plus the entries after the mark, instead of
    summing the account's whole history. Written only by reconciliation, with the run that moves the mark.
    """

    account = models.OneToOneField(
        "accounts.Account", on_delete=models.CASCADE, primary_key=True, related_name="ledger_checkpoint"
    )
    total = _money()

    def __str__(self) -> str:
        return f"ledger checkpoint of #{self.account_id}: {self.total}"


class ReconciliationFinding(models.Model):
    """Something a reconciliation run found; a money fix is a ledger entry that names the finding."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="findings")
    kind = models.CharField(max_length=64, db_index=True)
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, null=True, blank=True)
    reference = models.CharField(max_length=200, blank=True)
    detail = models.TextField()
    amount = _money(null=True, blank=True)
    fix_entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [
            ("repair_finding", "Can repair a reconciliation finding"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail[:60]}"
