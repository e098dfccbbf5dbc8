"""Exact-decimal JSON: every Decimal comes out as the number it is, and nothing else changes."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.exactjson import dumps, dumps_bytes

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


# The bytes writer: any document `dumps` writes, with floats, wide integers, non-string keys and text of
# every kind, reads back to the same values.
any_leaves = st.one_of(
    leaves,
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
)
any_documents = st.recursive(
    any_leaves,
    lambda children: st.one_of(
        st.lists(children),
        st.dictionaries(st.text(), children),
        st.dictionaries(st.integers(), children, max_size=2),
    ),
    max_leaves=30,
)


@given(any_documents)
def test_the_bytes_writer_reads_back_as_the_text_writer_does(document):
    try:
        expected = dumps(document).encode()
    except UnicodeEncodeError:  # a lone surrogate: json writes it, UTF-8 cannot hold it
        with pytest.raises(UnicodeEncodeError):
            dumps_bytes(document)
        return
    written = dumps_bytes(document)
    assert json.loads(written, parse_float=Decimal) == json.loads(expected, parse_float=Decimal)


@given(st.lists(decimals))
def test_the_bytes_writer_writes_decimals_as_plain_numbers(amounts):
    parsed, written = _loads(dumps_bytes(amounts).decode())
    assert parsed == amounts
    assert not [raw for raw in written if "e" in raw.lower()]


def test_the_bytes_writer_writes_what_the_text_writer_writes():
    document = {"cost": Decimal("0.0000066"), "zero": Decimal("-0"), "name": "Привет ☃\x00", "n": [1, None, True]}
    assert dumps_bytes(document) == dumps(document).encode()


def test_the_bytes_writer_refuses_what_json_refuses():
    with pytest.raises(TypeError, match="set"):
        dumps_bytes({"tags": {1, 2}})
    with pytest.raises(TypeError, match="datetime"):
        dumps_bytes({"at": datetime.datetime(2026, 12, 3)})
    with pytest.raises(ValueError, match="NaN"):
        dumps_bytes([Decimal("NaN")])


def test_the_bytes_writer_writes_a_float_that_is_not_finite_as_null():
    assert dumps_bytes({"logprob": float("nan"), "x": float("-inf")}) == b'{"logprob":null,"x":null}'
