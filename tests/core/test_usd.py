"""USD as text: one function per precision, each byte for byte what its readers have always seen."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.usd import decimal_text, usd_4dp, usd_cents, usd_exact, usd_micro


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("1234567.125"), "$1,234,567.125"),
        (Decimal("-0.00000005"), "-$0.00000005"),
        (Decimal("-2.5"), "-$2.50"),
        (Decimal("0.0000000001"), "$0.0000000001"),
        (Decimal("1500.0000000000"), "$1,500.00"),
        (Decimal("0"), "$0.00"),
        (Decimal("-0"), "$0.00"),
        (Decimal("0E-10"), "$0.00"),
        (None, "—"),
    ],
)
def test_usd_exact_shows_operators_every_digit(value, text):
    assert usd_exact(value) == text


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("1.5"), "$1.50"),
        (Decimal("1234.5"), "$1234.50"),
        (Decimal("0.0000189"), "$0.000018"),
        (Decimal("0.0000066"), "$0.000006"),
        (Decimal("1.0000009"), "$1.00"),
        (Decimal("0.125"), "$0.125"),
        (Decimal("-0.0000189"), "-$0.000018"),
        (Decimal("-2.5"), "-$2.50"),
        (Decimal("0"), "$0.00"),
        (Decimal("0E-10"), "$0.00"),
        (Decimal("0.0000000001"), "$0.00"),
    ],
)
def test_usd_micro_shows_at_most_six_places_rounded_down(amount, text):
    assert usd_micro(amount) == text


def test_usd_micro_drops_the_sign_of_an_amount_too_small_to_show():
    assert usd_micro(Decimal("-0.0000001")) == "$0.00"


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("1.5"), "$1.5000"),
        (Decimal("0.0125"), "$0.0125"),
        (Decimal("0.00015"), "$0.0002"),
        (Decimal("0.00025"), "$0.0002"),
        (Decimal("0.00005"), "$0.0000"),
        (Decimal("0.0000066"), "$0.0000"),
        (Decimal("-2.5"), "$-2.5000"),
        (Decimal("0"), "$0.0000"),
    ],
)
def test_usd_4dp_rounds_to_four_places_half_to_even(amount, text):
    assert usd_4dp(amount) == text


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("1.5"), "1.50"),
        (Decimal("1234567.125"), "1234567.13"),
        (Decimal("0.125"), "0.13"),
        (Decimal("0.135"), "0.14"),
        (Decimal("0.005"), "0.01"),
        (Decimal("0.0049999999"), "0.00"),
        (Decimal("-0.005"), "-0.01"),
        (Decimal("-2.5"), "-2.50"),
        (Decimal("0"), "0.00"),
    ],
)
def test_usd_cents_rounds_half_up_without_a_dollar_sign(amount, text):
    assert usd_cents(amount) == text


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("0.0000066"), "0.0000066"),
        (Decimal("6.6E-6"), "0.0000066"),
        (Decimal("1.50"), "1.5"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-0.00000005"), "-0.00000005"),
        (Decimal("0"), "0"),
        (Decimal("-0"), "0"),
        (Decimal("0E-10"), "0"),
    ],
)
def test_decimal_text_is_a_plain_number_without_exponent(amount, text):
    assert decimal_text(amount) == text


def test_decimal_text_keeps_digits_beyond_the_default_precision():
    amount = Decimal("0.000000000123456789012345678901234567890")
    assert decimal_text(amount) == "0.00000000012345678901234567890123456789"
