"""No secret in any log line: API keys, Bot API URLs, provider keys and configured secrets are masked.

Installed once (core/apps.py) as the log record factory, so every record is cleaned when it is made,
whatever handler, formatter or capture reads it afterwards, exceptions and their tracebacks included. A
record is only made for an enabled level, so a disabled debug line costs nothing.

What is masked:
- customer API keys (`orb_live_…`), wherever they appear;
- Bot API paths (`/bot<token>/…`) and the configured bot token, webhook secret and payment token;
- `Authorization: Bearer …` values and OpenAI-style `sk-…` keys;
- every provider key the catalog loaded (`secret_register`), and `EMULATOR_API_KEY`.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "[redacted]"
_PATTERNS = (
    (re.compile(r"orb_live_[A-Za-z0-9_\-]+"), MASK),
    (re.compile(r"/bot[0-9]+:[^/\s'\"]+"), "/bot" + MASK),
    (re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"), r"\1" + MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), MASK),
)
_SETTINGS_SECRETS = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "TELEGRAM_PAYMENT_PROVIDER_TOKEN",
    "EMULATOR_API_KEY",
    "SECRET_KEY",
)
_MIN_SECRET = 8  # shorter values would mask ordinary words
_registered: set[str] = set()
_lock = threading.Lock()
_installed = False


def secret_register(value: str) -> None:
    """Mask this value (a provider's key, say) in every later log line."""
    if value and len(value) >= _MIN_SECRET and value not in _registered:
        with _lock:
            _registered.add(value)


def _secrets() -> list[str]:
    from django.conf import settings

    found = list(_registered)
    if settings.configured:
        for name in _SETTINGS_SECRETS:
            value = getattr(settings, name, "")
            if isinstance(value, str) and len(value) >= _MIN_SECRET:
                found.append(value)
    return found


def redact(text: str) -> str:
    """`text` with every secret this module knows of masked."""
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _clean(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is logging's own business to report
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install() -> None:
    """Make every log record of this process pass through `redact` (idempotent)."""
    global _installed
    if _installed:
        return
    made = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = made(*args, **kwargs)
        _clean(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
