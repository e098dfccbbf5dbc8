"""How values look in bot messages (HTML parse mode); amounts are core.usd.usd_micro's."""

from __future__ import annotations

from datetime import datetime
from html import escape


def code(value: object) -> str:
    """Return a value as tap-to-copy monospace, escaped."""
    return f"<code>{escape(str(value))}</code>"


def date_text(moment: datetime) -> str:
    """Return a UTC timestamp as `2026-11-25 17:10`."""
    return f"{moment:%Y-%m-%d %H:%M}"
