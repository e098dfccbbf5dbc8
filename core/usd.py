"""USD amounts as text, one function per precision; who reads the amount decides which.

=============  ============================  =====================================================
function       looks like                    for
=============  ============================  =====================================================
usd_exact      `$1,234.50`, `-$0.00000005`   operators (admin, dashboard): every digit there is
usd_short      `$1.25`, `$0.000018`          admin lists: two to six places, half to even, the exact
                                             amount in a tooltip (`core.admin.usd_cell`)
usd_micro      `$1.50`, `$0.000018`          the bot: at most six places, rounded down, so it never
                                             shows more than the account has
usd_4dp        `$0.0125`                     API error messages
usd_cents      `1.50`                        alert e-mails (the text says "USD")
decimal_text   `0.0000066`                   JSON bodies: an exact number, never `6.6E-6`
=============  ============================  =====================================================
"""

from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_DOWN, ROUND_HALF_UP, Context, Decimal

_CENTS = Decimal("0.01")
_FOUR_PLACES = Decimal("0.0001")
# Balances carry 10 decimal places; six are enough to show a single cheap request's cost.
_SIX_PLACES = Decimal("0.000001")
# normalize() rounds to its context's precision (28 digits by default): this one never rounds.
_UNROUNDED = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def usd_exact(value: Decimal | None) -> str:
    """Return `$1,234.50`, `-$0.00000005`, `—` for None: grouped, at least cents, no digit lost."""
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    whole, _, fraction = f"{abs(value):,.10f}".rstrip("0").partition(".")
    return f"{sign}${whole}.{fraction.ljust(2, '0')}"


def usd_short(value: Decimal | None) -> str:
    """Return `$1,234.50`, `$0.000018`, `<$0.000001`, `—` for None: two to six places, rounded half to even."""
    if value is None:
        return "—"
    shown = abs(value).quantize(_SIX_PLACES)
    sign = "-" if value < 0 else ""
    if not shown and value:
        return f"{sign}<$0.000001"
    whole, _, fraction = f"{shown:,.6f}".partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{sign if shown else ''}${whole}.{fraction}"


def usd_micro(amount: Decimal) -> str:
    """Return `$1.50`, `$0.000018`: at least cents, at most six places, never rounded up."""
    shown = abs(amount).quantize(_SIX_PLACES, rounding=ROUND_DOWN).normalize()
    if shown.as_tuple().exponent > -2:
        shown = shown.quantize(_CENTS)
    text = format(shown, "f")
    return f"-${text}" if amount < 0 and shown else f"${text}"


def usd_4dp(amount: Decimal) -> str:
    """Return `$0.0125`: four places, rounded half to even."""
    return f"${amount.quantize(_FOUR_PLACES)}"


def usd_cents(amount: Decimal) -> str:
    """Return `1.50`: two places, rounded half up, no `$`."""
    return str(amount.quantize(_CENTS, rounding=ROUND_HALF_UP))


def decimal_text(amount: Decimal) -> str:
    """Return a Decimal as a plain JSON number: `0.0000066`, never `6.6E-6`; `0` for zero and -0."""
    text = format(amount.normalize(_UNROUNDED), "f")
    return "0" if text in ("-0", "") else text
