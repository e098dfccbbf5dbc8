"""Money arithmetic: the one quantize helper and the one place tokens × price becomes cost.

USD amounts are Decimal with 10 decimal places; a float never enters (`usd()` refuses one).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Price

PLACES = Decimal("0.0000000001")
PER_MILLION = Decimal(1_000_000)
ZERO = Decimal(0)


def usd(value: Decimal | int | str) -> Decimal:
    """Return `value` as a USD amount rounded half-up to 10 decimal places."""
    if isinstance(value, float):
        raise TypeError("USD amounts are never floats; pass a Decimal or a string")
    return Decimal(value).quantize(PLACES, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request; `cached_tokens` is the part of the prompt read from cache and
    `cache_write_tokens` the part written to it (Anthropic's prompt caching)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Cost:
    """A request's cost in USD, by component; `total` is what is charged."""

    prompt: Decimal
    cached_prompt: Decimal
    completion: Decimal
    request: Decimal
    total: Decimal
    cache_write_prompt: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens and per request, as a `Price` holds them: here, what a route costs us."""

    prompt: Decimal
    completion: Decimal
    cached_prompt: Decimal | None = None
    request: Decimal = ZERO
    cache_write_prompt: Decimal | None = None


def cost_for(usage: Usage, price: Price | Rates) -> Cost:
    """Return the cost of `usage` at `price` (USD per 1M tokens, plus a per-request fee).

    The prompt's cache reads and cache writes are priced at their own rates (each, when unset, at the
    prompt's); the rest of the prompt at the prompt's.
    """
    cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
    written = min(max(usage.cache_write_tokens, 0), usage.prompt_tokens - cached)
    cached_rate = price.prompt if price.cached_prompt is None else price.cached_prompt
    write_rate = price.prompt if price.cache_write_prompt is None else price.cache_write_prompt
    prompt = Decimal(usage.prompt_tokens - cached - written) * price.prompt / PER_MILLION
    cached_prompt = Decimal(cached) * cached_rate / PER_MILLION
    cache_write_prompt = Decimal(written) * write_rate / PER_MILLION
    completion = Decimal(usage.completion_tokens) * price.completion / PER_MILLION
    total = prompt + cached_prompt + cache_write_prompt + completion + price.request
    return Cost(
        prompt=usd(prompt),
        cached_prompt=usd(cached_prompt),
        completion=usd(completion),
        request=usd(price.request),
        total=usd(total),
        cache_write_prompt=usd(cache_write_prompt),
    )
