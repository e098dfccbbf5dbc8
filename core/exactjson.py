"""JSON text in which every Decimal is an exact number: `0.0000066`, never a float, a string or `6.6E-6`.

json's C encoder calls `default` only for the types it does not know, so there is no Python walk of the
object: `default` turns each Decimal into a placeholder string, and the placeholders' JSON forms are then
swapped for the numbers. Each placeholder holds a random token drawn for the call, so no string already
in the object (upstream text may hold anything, NULs included) can be taken for one.

`dumps_bytes`, for the answers and events the relay writes, is the same document as UTF-8 bytes written by
orjson, each Decimal placed as its exact text (`orjson.Fragment`): no placeholders, no replaces, and about
a third of json's time. Where orjson would not write what json writes (an integer outside 64 bits, a key
that is not a string, a lone surrogate), it falls back to `dumps`, which gives json's answer or error.
"""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from typing import Any

import orjson

from .usd import decimal_text


def dumps(obj: Any, *, compact: bool = True) -> str:
    """Return `obj` as JSON text (`compact`: no spaces after `,` and `:`), its Decimals as exact numbers.

    A Decimal that is not finite raises ValueError; any other type json does not know raises TypeError.
    """
    token = secrets.token_hex(8)
    numbers: list[str] = []

    def default(value: Any) -> str:
        if not isinstance(value, Decimal):
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        numbers.append(decimal_text(value))
        return f"{token}:{len(numbers) - 1}"

    separators = (",", ":") if compact else (", ", ": ")
    text = json.dumps(obj, default=default, ensure_ascii=False, separators=separators)
    # A handful of amounts per document: one replace each beats compiling a pattern for the call's token.
    for index, number in enumerate(numbers):
        text = text.replace(f'"{token}:{index}"', number, 1)
    return text


# Dates and dataclasses go to `default` too, which refuses them, as json does.
_AS_JSON_DOES = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _exact(value: Any) -> orjson.Fragment:
    if not isinstance(value, Decimal):
        raise TypeError
    if not value.is_finite():
        raise ValueError
    return orjson.Fragment(decimal_text(value))


def dumps_bytes(obj: Any) -> bytes:
    """`dumps(obj)` as UTF-8 bytes, compact, written by orjson where it can be.

    Every document `dumps` writes reads back to the same values from both (floats in their shortest form
    either way: orjson writes `1e-5` where json writes `1e-05`). One difference is deliberate: a float
    that is not finite, which only json's lenient reader lets into a document, is written `null`, valid
    JSON, where json writes `NaN`, which strict parsers refuse.
    """
    try:
        return orjson.dumps(obj, default=_exact, option=_AS_JSON_DOES)
    except orjson.JSONEncodeError:
        return dumps(obj).encode()
