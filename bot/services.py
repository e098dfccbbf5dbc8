"""Writes the bot makes outside money: accounts for chats, and the record of updates handled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account
from accounts.services import account_create

from .i18n import language_for
from .links import link_token_account_id
from .models import ProcessedUpdate
from .updates import Sender

# Telegram redelivers an unanswered update for up to about a day; after a week of silence it restarts
# update ids at random, so an older record says nothing about a new update with the same id.
DUPLICATE_WINDOW = timedelta(days=7)


class LinkRefused(Exception):
    """A deep link that cannot attach this chat to the account it names."""


@dataclass(frozen=True, slots=True)
class StartOutcome:
    """The account a chat is attached to after /start, and how it got there."""

    account: Account
    created: bool
    linked: bool


def _display_name(sender: Sender) -> str:
    if sender.full_name:
        return sender.full_name[:200]
    return f"@{sender.username}" if sender.username else f"Telegram {sender.user_id}"


@transaction.atomic
def chat_start(*, sender: Sender, link_token: str = "") -> StartOutcome:
    """Attach the chat to its account: the existing one, the one a deep link names, or a new one."""
    language = language_for(sender.language_code)
    account = Account.objects.select_for_update().filter(telegram_chat_id=sender.chat_id).first()
    if account is not None:
        if link_token and link_token_account_id(link_token) not in (None, account.pk):
            raise LinkRefused("this chat already belongs to another account")
        Account.objects.filter(pk=account.pk).update(language=language, telegram_username=sender.username[:64])
        account.language, account.telegram_username = language, sender.username[:64]
        return StartOutcome(account=account, created=False, linked=False)
    if link_token:
        return StartOutcome(
            account=_link(sender=sender, token=link_token, language=language), created=False, linked=True
        )
    try:
        with transaction.atomic():
            account = account_create(
                name=_display_name(sender),
                telegram_chat_id=sender.chat_id,
                telegram_username=sender.username[:64],
                language=language,
            )
    except IntegrityError:
        # A concurrent /start from the same chat created it first.
        return StartOutcome(account=Account.objects.get(telegram_chat_id=sender.chat_id), created=False, linked=False)
    return StartOutcome(account=account, created=True, linked=False)


def _link(*, sender: Sender, token: str, language: str) -> Account:
    account_id = link_token_account_id(token)
    if account_id is None:
        raise LinkRefused("the link is invalid or expired")
    account = Account.objects.select_for_update().filter(pk=account_id).first()
    if account is None or account.telegram_chat_id not in (None, sender.chat_id):
        raise LinkRefused("the account is attached to another chat")
    account.telegram_chat_id = sender.chat_id
    account.telegram_username = sender.username[:64]
    account.language = language
    account.save(update_fields=["telegram_chat_id", "telegram_username", "language"])
    return account


def update_claim(update_id: int) -> bool:
    """Record that this process handles an update; False when it was handled (or is in hand) already."""
    now = timezone.now()
    try:
        with transaction.atomic():
            ProcessedUpdate.objects.create(update_id=update_id, received_at=now)
        return True
    except IntegrityError:
        # Only a record from before Telegram could have restarted its numbering is stale.
        return bool(
            ProcessedUpdate.objects.filter(update_id=update_id, received_at__lt=now - DUPLICATE_WINDOW).update(
                received_at=now
            )
        )


def update_release(update_id: int) -> None:
    """Forget an update whose handling failed, so Telegram's redelivery is handled."""
    ProcessedUpdate.objects.filter(update_id=update_id).delete()


def processed_updates_prune() -> int:
    """Forget updates older than the duplicate window; return how many were forgotten."""
    deleted, _ = ProcessedUpdate.objects.filter(received_at__lt=timezone.now() - DUPLICATE_WINDOW).delete()
    return deleted
