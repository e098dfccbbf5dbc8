"""Checks on a request body's fields that every surface shares: numbers and integers within bounds.

A JSON integer can have hundreds of digits; Python reads it exactly, and `math.isfinite` on it raises
`OverflowError`. Every bound is checked on the value as read, so such a number is the client's 400,
naming its field, never a 500 and never a body forwarded for the provider to choke on.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import invalid

INT64 = (-(2**63), 2**63 - 1)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A JSON number: an integer of any size, or a finite float."""
    if isinstance(value, float):
        return math.isfinite(value)
    return is_int(value)


def number_check(body: dict, name: str, low: float, high: float, param: str | None = None) -> None:
    """`body[name]`, when present and not null, is a number in [low, high]."""
    value = body.get(name)
    if value is not None and (not is_number(value) or not low <= value <= high):
        param = param or name
        raise invalid(f"'{param}' must be a number between {low:g} and {high:g}.", param)


def int_check(body: dict, name: str, low: int, high: int, param: str | None = None) -> None:
    """`body[name]`, when present and not null, is an integer in [low, high]."""
    value = body.get(name)
    if value is not None and (not is_int(value) or not low <= value <= high):
        param = param or name
        raise invalid(f"'{param}' must be an integer between {low} and {high}.", param)


def number_map_check(body: dict, name: str, low: float, high: float) -> None:
    """`body[name]`, when present and not null, is an object whose values are numbers in [low, high]."""
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, dict):
        raise invalid(f"'{name}' must be an object.", name)
    for key in value:
        number_check(value, key, low, high, param=f"{name}.{key}")
