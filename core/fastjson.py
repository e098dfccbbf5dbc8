"""json.loads, read by orjson wherever orjson gives exactly what json.loads gives.

orjson reads JSON several times faster than json. On a document both accept they agree but for one kind
of number: an integer outside 64 bits, which orjson turns into a float and json keeps exact. Such a float
is at least 2**63 in size, so a result holding a float that large is read again by json (a float literal
that large is read again too: slower, still exact). Whatever orjson refuses (NaN, Infinity, numbers past
a float's range, lone surrogate escapes, a byte-order mark, text that is not UTF-8, nesting deeper than
1024) goes to the slow reader, which gives the answer or the error it always gave. Both keep the last of
duplicate keys.

Not for numbers that must stay exact as Decimal (`json.loads(..., parse_float=Decimal)`, core/exactjson.py's
amounts): orjson has only floats.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

_WIDE = float(2**63)  # no 64-bit integer is a float this large; orjson's floats from wider integers are


def _holds_wide_float(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        elif kind is float and not -_WIDE < item < _WIDE:
            return True
    return False


def loads(data: bytes | str, *, slow: Callable[[Any], Any] = json.loads) -> Any:
    """What `slow(data)` returns (json.loads by default), read by orjson when it reads it the same."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return slow(data)
    if _holds_wide_float(value):
        return slow(data)
    return value
