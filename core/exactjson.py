"""JSON text in which every Decimal is an exact number: `0.0000066`, never a float, a string or `6.6E-6`.

json's C encoder calls `default` only for the types it does not know, so there is no Python walk of the
object: `default` turns each Decimal into a placeholder string, and the placeholders' JSON forms are then
swapped for the numbers. Each placeholder holds a random token drawn for the call, so no string already
in the object (upstream text may hold anything, NULs included) can be taken for one.
"""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from typing import Any

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
