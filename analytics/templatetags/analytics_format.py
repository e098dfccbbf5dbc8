"""Filters for the analytics pages: money to sensible precision with the exact amount in a tooltip."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.html import format_html

from analytics.models import LATENCY_BOUNDS_MS
from core.usd import usd_exact, usd_micro

register = template.Library()


@register.filter
def money(value: Decimal | None) -> str:
    """`$1.50`, `$0.000018` (at most six places), the exact amount on hover."""
    if value is None:
        return "—"
    return format_html('<span class="money" title="{}">{}</span>', usd_exact(value), usd_micro(value))


@register.filter
def percent(value: Decimal | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


@register.filter
def latency(value: int | None) -> str:
    """A percentile's bucket bound: `≤ 750 ms`, `≤ 1.5 s`; None is past the last bound."""
    if value is None:
        return f"> {LATENCY_BOUNDS_MS[-1] / 1000:g} s"
    return f"≤ {value} ms" if value < 1000 else f"≤ {value / 1000:g} s"
