"""How amounts and values look in bot messages (HTML parse mode)."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from html import escape

# Balances carry 10 decimal places; six are enough to show a single cheap request's cost.
_SHOWN = Decimal("0.000001")
_CENTS = Decimal("0.01")


def usd_text(amount: Decimal) -> str:
    """Return `$1.50`, `$0.000018`: at least cents, at most six places, never rounded up."""
    shown = abs(amount).quantize(_SHOWN, rounding=ROUND_DOWN).normalize()
    if shown.as_tuple().exponent > -2:
        shown = shown.quantize(_CENTS)
    text = format(shown, "f")
    return f"-${text}" if amount < 0 and shown else f"${text}"


def code(value: object) -> str:
    """Return a value as tap-to-copy monospace, escaped."""
    return f"<code>{escape(str(value))}</code>"


def date_text(moment: datetime) -> str:
    """Return a UTC timestamp as `2026-11-25 17:10`."""
    return f"{moment:%Y-%m-%d %H:%M}"
