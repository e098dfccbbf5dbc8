"""The fast JSON reader (core/fastjson.py) reads every document as json.loads does."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import fastjson

NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**62, max_value=2**66),
    st.integers(min_value=-(2**66), max_value=-(2**62)),
    st.floats(),
    st.floats(min_value=1e17, max_value=1e21),
)
TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF))  # lone surrogates included
VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def _same(fast: object, slow: object) -> bool:
    """Equal, and of the same types all the way down (1 == 1.0 is not the same reading)."""
    return repr(fast) == repr(slow)


def _outcome(read, data):
    try:
        return "value", repr(read(data))
    except (ValueError, RecursionError) as exc:
        return "error", type(exc)


@settings(max_examples=600, deadline=None)
@given(VALUES, st.booleans(), st.sampled_from(["str", "bytes"]))
def test_it_reads_every_document_as_json_does(value, ascii_only, form):
    text = json.dumps(value, ensure_ascii=ascii_only)
    data = text if form == "str" else text.encode("utf-8", "surrogatepass")
    assert _outcome(fastjson.loads, data) == _outcome(json.loads, data)


@settings(max_examples=600, deadline=None)
@given(VALUES)
def test_where_orjson_answers_unchecked_it_agrees_with_json(value):
    data = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        fast = orjson.loads(data)
    except orjson.JSONDecodeError:
        return  # the slow reader's
    if not fastjson._holds_wide_float(fast):
        assert _same(fast, json.loads(data))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "é"]), st.integers(-5, 5)), max_size=6))
def test_duplicate_keys_keep_the_last_as_json_does(pairs):
    data = "{" + ",".join(f"{json.dumps(key)}:{number}" for key, number in pairs) + "}"
    assert _same(fastjson.loads(data), json.loads(data))


@pytest.mark.parametrize(
    "data",
    [
        b"123456789012345678901234567890",
        b'{"n":-9223372036854775809}',
        b"[18446744073709551616, 1]",
        b"1e400",
        b'"\\ud800"',
        b"NaN",
        b"[-Infinity]",
        b"\xef\xbb\xbf{}",
        '{"a": 1}'.encode("utf-16"),
        b'"\xed\xa0\x80"',
        b"[" * 2000 + b"]" * 2000,
        b'{"a": 1e19}',
        b"not json",
        b"",
    ],
)
def test_what_orjson_reads_otherwise_is_read_by_json(data):
    assert _outcome(fastjson.loads, data) == _outcome(json.loads, data)


def test_a_wide_integer_stays_exact():
    assert fastjson.loads(b'{"tokens": 123456789012345678901234567890}') == {"tokens": 123456789012345678901234567890}


def _refuse(data):
    raise AssertionError("read by the slow reader")


def test_an_ordinary_document_is_read_by_orjson():
    document = b'{"usage": {"prompt_tokens": 12}, "x": [1.5, null, true, "\\u00e9", -9223372036854775808]}'
    assert fastjson.loads(document, slow=_refuse) == {
        "usage": {"prompt_tokens": 12},
        "x": [1.5, None, True, "é", -9223372036854775808],
    }
