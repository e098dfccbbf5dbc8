"""The one in-process cache idiom: a fresh period, a reload grace, a size bound, and a registry.

Every per-process cache of the request path (keys, catalog, upstream targets, account headroom, the
in-flight commits) is a `ProcessCache`. A hit is one dict lookup and one clock comparison, with no
network round trip. When an entry expires, the first caller reloads it while the others keep using
the old value for `grace` seconds, so that they do not all hit the database at once. Past
`max_entries` the oldest entries go first. Tests clear every cache at once through `caches_clear()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
_MISSING: object = object()
_registry: dict[str, ProcessCache] = {}


class ProcessCache(Generic[V]):
    """A bounded in-process cache; `ttl` (seconds, or a callable read on each store) None: never expires."""

    def __init__(
        self,
        name: str,
        *,
        max_entries: int,
        ttl: float | Callable[[], float] | None = None,
        grace: float = 0.0,
    ) -> None:
        if name in _registry:
            raise ValueError(f"a cache named {name!r} exists already")
        self.name = name
        self.max_entries = max_entries
        self._ttl = ttl
        self.grace = grace
        # key -> (fresh until, usable until, value), in time.monotonic() seconds
        self._entries: dict[Hashable, tuple[float, float, V]] = {}
        _registry[name] = self

    def ttl(self) -> float:
        ttl = self._ttl
        if ttl is None:
            return float("inf")
        return float(ttl() if callable(ttl) else ttl)

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        """The cached value, or `load()`'s (stored); an expired value still answers others while one reloads."""
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None:
            fresh_until, usable_until, value = hit
            if now < fresh_until:
                return value
            if now < usable_until:
                # This caller reloads; until it is done the others go on with the value they had.
                self._entries[key] = (usable_until, usable_until, value)
        value = load()
        self.put(key, value, now=now)
        return value

    def peek(self, key: Hashable, default: V | None = None) -> V | None:
        """The value while it is fresh, else `default`; nothing is loaded."""
        hit = self._entries.get(key)
        if hit is None or time.monotonic() >= hit[0]:
            return default
        return hit[2]

    def put(self, key: Hashable, value: V, *, now: float | None = None) -> None:
        """Store `value` as fresh from now."""
        entries = self._entries
        if key not in entries and len(entries) >= self.max_entries:
            del entries[next(iter(entries))]  # the oldest first
        fresh_until = (time.monotonic() if now is None else now) + self.ttl()
        entries[key] = (fresh_until, fresh_until + self.grace, value)

    def pop(self, key: Hashable) -> V | None:
        """Forget one entry (returning its value, if there was one)."""
        hit = self._entries.pop(key, None)
        return None if hit is None else hit[2]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return self.peek(key, _MISSING) is not _MISSING  # type: ignore[arg-type]


def cache_named(name: str) -> ProcessCache:
    """The registered cache called `name`."""
    return _registry[name]


def caches_clear() -> None:
    """Forget everything every process cache holds (after a catalog change in tests, say)."""
    for cache in _registry.values():
        cache.clear()
