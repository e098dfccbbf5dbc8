"""The language a chat is answered in: the account's, else English for en* Telegram users, else Russian."""

from __future__ import annotations

from contextlib import AbstractContextManager

from django.utils import translation

from accounts.models import Account


def language_for(language_code: str) -> str:
    """Return the bot language for a Telegram `language_code`: English for en*, else Russian."""
    return "en" if language_code.lower().startswith("en") else "ru"


def language_override(language_code: str, account: Account | None) -> AbstractContextManager:
    """Activate the language of this account or, without one, of this Telegram user."""
    return translation.override(account.language if account is not None else language_for(language_code))
