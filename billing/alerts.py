"""Low-balance alerts: one per crossing below an account's threshold and channel, delivered at most once.

A crossing is named by the credit that last lifted the balance to the threshold or above
(`entry:<ledger entry id>`, or `initial` when none ever did). Checking the same crossing again collides
on the unique (account, crossing, channel) key; a top-up above the threshold starts a new crossing,
which re-arms the alert. Channels are senders registered by name: e-mail is built in, and the bot app
registers Telegram, so billing never imports the bot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Concat
from django.utils import timezone, translation
from django.utils.translation import gettext

from accounts.models import Account
from core.usd import usd_cents

from .models import LedgerEntry, LowBalanceAlert

log = logging.getLogger(__name__)

Sender = Callable[[Account, LowBalanceAlert], None]
Channel = LowBalanceAlert.Channel

# Written when a delivery starts and cleared when the sender returns: one that stays marks a worker lost
# mid-send, whose alert is left as sent rather than risk sending it twice.
IN_FLIGHT = "delivery started but not confirmed; if this stays, the worker stopped mid-send (not retried)"
# An alert nobody tried to deliver this long after it was created lost its task; the sweep re-sends it.
UNDELIVERED_AFTER = timedelta(minutes=5)
# Longer than every retry of the delivery task together (billing.tasks: about half an hour at most).
RETRIES_OVER_AFTER = timedelta(hours=2)

_senders: dict[str, Sender] = {}
_applies: dict[str, Callable[[Account], bool]] = {
    Channel.EMAIL: lambda account: bool(account.email),
    Channel.TELEGRAM: lambda account: account.telegram_chat_id is not None,
}
_applies_q: dict[str, Q] = {
    Channel.EMAIL: ~Q(email=""),
    Channel.TELEGRAM: Q(telegram_chat_id__isnull=False),
}


class AlertDeliveryFailed(Exception):
    """A channel's sender raised; the alert is pending again and its task retries."""


def register_channel(name: str, sender: Sender) -> None:
    """Deliver alerts of channel `name` through `sender`, which raises when the message did not go out."""
    if name not in Channel.values:
        raise ValueError(f"unknown alert channel {name!r}; known: {', '.join(Channel.values)}")
    _senders[name] = sender


def unregister_channel(name: str) -> None:
    """Stop creating and delivering alerts on channel `name`."""
    _senders.pop(name, None)


def channels_for(account: Account) -> list[str]:
    """Return the registered channels that can reach `account`."""
    return [name for name in _senders if _applies[name](account)]


def low_balance_crossing(account: Account) -> str:
    """Name the crossing an account is in: the latest credit that left its balance at the threshold or above."""
    entry_id = (
        LedgerEntry.objects.filter(account=account, amount__gt=0, balance_after__gte=account.low_balance_threshold)
        .order_by("-id")
        .values_list("pk", flat=True)
        .first()
    )
    return "initial" if entry_id is None else f"entry:{entry_id}"


def low_balance_check(*, account_id: int) -> list[LowBalanceAlert]:
    """Create the pending alerts of the account's current crossing below its threshold; [] when none is due.

    Idempotent and safe to run concurrently: a second check of the same crossing meets the unique key.
    An account that never had a ledger entry has nothing to be warned about.
    """
    account = Account.objects.get(pk=account_id)
    available = account.available
    if available >= account.low_balance_threshold or not LedgerEntry.objects.filter(account=account).exists():
        return []
    crossing = low_balance_crossing(account)
    created = []
    for channel in channels_for(account):
        alert, new = LowBalanceAlert.objects.get_or_create(
            account=account,
            crossing=crossing,
            channel=channel,
            defaults={"balance": available, "threshold": account.low_balance_threshold},
        )
        if new:
            log.info("low balance on #%s (%s USD): %s alert for crossing %s", account.pk, available, channel, crossing)
            created.append(alert)
    return created


def accounts_due_low_balance_alert() -> QuerySet[Account]:
    """Return accounts below their threshold that have no alert yet for their current crossing."""
    reachable = Q(pk__in=[])
    for name in _senders:
        reachable |= _applies_q[name]
    arming = LedgerEntry.objects.filter(
        account=OuterRef("pk"), amount__gt=0, balance_after__gte=OuterRef("low_balance_threshold")
    ).order_by("-id")
    # The same name low_balance_crossing() gives, computed in SQL so alerted accounts are skipped cheaply.
    crossing = Case(
        When(arming_id__isnull=True, then=Value("initial")),
        default=Concat(Value("entry:"), Cast("arming_id", CharField())),
        output_field=CharField(),
    )
    alerted = LowBalanceAlert.objects.filter(account=OuterRef("pk"), crossing=OuterRef("crossing"))
    return (
        Account.objects.filter(reachable, balance__lt=F("held") + F("low_balance_threshold"))
        .filter(Exists(LedgerEntry.objects.filter(account=OuterRef("pk"))))
        .annotate(arming_id=Subquery(arming.values("pk")[:1], output_field=BigIntegerField()))
        .annotate(crossing=crossing)
        .exclude(Exists(alerted))
        .order_by("pk")
    )


def low_balance_sweep() -> list[int]:
    """Create the alerts every missed crossing is due; return the ids of alerts waiting for delivery."""
    created = {
        alert.pk
        for account_id in accounts_due_low_balance_alert().values_list("pk", flat=True)
        for alert in low_balance_check(account_id=account_id)
    }
    # Alerts whose delivery task was lost: never attempted for a while, or still pending long after the
    # last retry would have run. Re-sending is safe, delivery claims the alert first.
    now = timezone.now()
    lost = LowBalanceAlert.objects.filter(status=LowBalanceAlert.Status.PENDING).filter(
        Q(attempts=0, created_at__lt=now - UNDELIVERED_AFTER) | Q(created_at__lt=now - RETRIES_OVER_AFTER)
    )
    return sorted(created | set(lost.values_list("pk", flat=True)))


def low_balance_deliver(*, alert_id: int, final_attempt: bool = False) -> LowBalanceAlert | None:
    """Send one pending alert, at most once; raise AlertDeliveryFailed when it should be retried.

    The alert is claimed (status sent, row locked, committed) before the sender runs, so a concurrent
    or repeated delivery finds it sent and does nothing, and a worker killed mid-send never leads to a
    second message: delivery is at-most-once, and such an alert keeps the IN_FLIGHT note.
    """
    with transaction.atomic():
        alert = LowBalanceAlert.objects.select_for_update().filter(pk=alert_id).first()
        if alert is None or alert.status != LowBalanceAlert.Status.PENDING:
            return alert
        sender = _senders.get(alert.channel)
        attempt = alert.attempts + 1
        if sender is None:
            alert.status, alert.attempts, alert.error = LowBalanceAlert.Status.FAILED, attempt, "channel not registered"
            alert.save(update_fields=["status", "attempts", "error"])
            return alert
        alert.status, alert.sent_at, alert.attempts, alert.error = (
            LowBalanceAlert.Status.SENT,
            timezone.now(),
            attempt,
            IN_FLIGHT,
        )
        alert.save(update_fields=["status", "sent_at", "attempts", "error"])
    mine = LowBalanceAlert.objects.filter(pk=alert.pk, attempts=attempt)
    try:
        sender(Account.objects.get(pk=alert.account_id), alert)
    except Exception as exc:
        alert.status = LowBalanceAlert.Status.FAILED if final_attempt else LowBalanceAlert.Status.PENDING
        alert.error = f"attempt {attempt}: {exc!r}"[:2000]
        alert.sent_at = None
        mine.update(status=alert.status, sent_at=None, error=alert.error)
        log.warning("low-balance alert #%s via %s failed: %s", alert.pk, alert.channel, alert.error)
        if not final_attempt:
            raise AlertDeliveryFailed(alert.error) from exc
        return alert
    alert.error = ""
    mine.update(error="")
    return alert


def low_balance_alert_retry(*, alert: LowBalanceAlert) -> bool:
    """Make a failed alert pending again so it can be delivered; False when it was not failed."""
    return bool(
        LowBalanceAlert.objects.filter(pk=alert.pk, status=LowBalanceAlert.Status.FAILED).update(
            status=LowBalanceAlert.Status.PENDING
        )
    )


def low_balance_message(account: Account, alert: LowBalanceAlert) -> tuple[str, str]:
    """Return the subject and text of an alert, in the account's language."""
    with translation.override(account.language):
        subject = gettext("ML Router: your balance is low")
        text = gettext(
            "Your available balance is %(balance)s USD, below your alert threshold of %(threshold)s USD. "
            "Top up with /topup in the Telegram bot to keep your API keys working."
        ) % {"balance": usd_cents(alert.balance), "threshold": usd_cents(alert.threshold)}
    return subject, text


def send_email_alert(account: Account, alert: LowBalanceAlert) -> None:
    """Deliver an alert by e-mail through Django's e-mail backend."""
    subject, text = low_balance_message(account, alert)
    send_mail(subject, text, None, [account.email], fail_silently=False)


register_channel(Channel.EMAIL, send_email_alert)
