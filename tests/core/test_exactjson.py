"""Exact-decimal JSON: every Decimal comes out as the number it is, and nothing else changes."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.exactjson import dumps

decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.builds(
        lambda sign, digits, exponent: Decimal((sign, digits, exponent)),
        st.integers(0, 1),
        st.lists(st.integers(0, 9), min_size=1, max_size=40),
        st.integers(-40, 40),
    ),
)
leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.text(), decimals)
documents = st.recursive(
    leaves,
    lambda children: st.one_of(st.lists(children), st.dictionaries(st.text(), children)),
    max_leaves=30,
)


def _loads(text: str) -> tuple[object, list[str]]:
    """Parse with Decimal for every non-integer number, and return the numbers' texts as written."""
    written: list[str] = []

    def number(raw: str) -> Decimal:
        written.append(raw)
        return Decimal(raw)

    return json.loads(text, parse_float=number, parse_int=number), written


@given(documents, st.booleans())
def test_it_round_trips_every_value_with_decimals_exact(document, compact):
    parsed, _ = _loads(dumps(document, compact=compact))
    assert parsed == document


@given(st.lists(decimals))
def test_it_writes_decimals_as_plain_numbers(amounts):
    parsed, written = _loads(dumps(amounts))
    assert parsed == amounts
    assert all(type(value) is Decimal for value in parsed)
    assert not [raw for raw in written if "e" in raw.lower()]


def test_it_writes_a_tiny_decimal_without_exponent():
    assert dumps({"cost": Decimal("0.0000066")}) == '{"cost":0.0000066}'


def test_it_writes_negative_zero_as_zero():
    assert dumps([Decimal("-0"), Decimal("0E-10")]) == "[0,0]"


def test_it_leaves_strings_with_nuls_unchanged():
    text = "\x00usage\x00"
    document = {"user": text, "cost": Decimal("1.50"), text: [text]}
    assert json.loads(dumps(document), parse_float=Decimal) == {"user": text, "cost": Decimal("1.5"), text: [text]}


def test_it_separates_like_json_when_not_compact():
    document = {"a": [1, Decimal("2.50")], "b": "x"}
    assert dumps(document, compact=False) == '{"a": [1, 2.5], "b": "x"}'
    assert dumps(document) == '{"a":[1,2.5],"b":"x"}'


def test_it_keeps_non_ascii_text_as_is():
    assert dumps({"name": "Привет ☃"}) == '{"name":"Привет ☃"}'


def test_it_rejects_types_json_does_not_know():
    with pytest.raises(TypeError, match="set"):
        dumps({"tags": {1, 2}})


def test_it_rejects_a_decimal_that_is_not_a_number():
    with pytest.raises(ValueError, match="NaN"):
        dumps([Decimal("NaN")])
