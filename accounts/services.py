"""Writes to accounts and keys. Every caller (admin, CLI, bot, API) goes through these."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .keys import key_generate, key_hash, key_visible_prefix
from .models import Account, ApiKey
from .principals import principal_forget


def account_create(
    *,
    name: str,
    email: str = "",
    telegram_chat_id: int | None = None,
    telegram_username: str = "",
    language: str = "ru",
) -> Account:
    """Create a customer account with a zero balance."""
    account = Account(
        name=name,
        email=email,
        telegram_chat_id=telegram_chat_id,
        telegram_username=telegram_username,
        language=language,
    )
    account.full_clean()
    account.save()
    return account


def account_set_status(*, account: Account, status: str) -> Account:
    """Suspend or reactivate an account; its keys stop or resume working within AUTH_CACHE_SECONDS."""
    if status not in Account.Status.values:
        raise ValueError(f"unknown account status {status!r}")
    Account.objects.filter(pk=account.pk).update(status=status)
    account.status = status
    for digest in ApiKey.objects.filter(account=account).values_list("key_hash", flat=True):
        principal_forget(digest)
    return account


def api_key_create(
    *,
    account: Account,
    name: str = "",
    rpm_limit: int | None = None,
    spend_limit: Decimal | None = None,
    spend_period: str = ApiKey.SpendPeriod.NONE,
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key; the secret is returned here once and never stored."""
    secret = key_generate()
    api_key = ApiKey(
        account=account,
        name=name,
        prefix=key_visible_prefix(secret),
        key_hash=key_hash(secret),
        rpm_limit=rpm_limit if rpm_limit is not None else settings.DEFAULT_KEY_RPM,
        spend_limit=spend_limit,
        spend_period=spend_period,
        expires_at=expires_at,
        allowed_models=list(allowed_models or ()),
    )
    api_key.full_clean()
    api_key.save()
    return api_key, secret


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key for good; revoking twice keeps the first revocation time."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    transaction.on_commit(lambda: principal_forget(api_key.key_hash))
    return api_key
