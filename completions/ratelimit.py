"""Requests-per-minute limits per API key (and optionally per account), shared through Redis.

A sliding window: a key may make at most its `rpm_limit` requests in any 60 seconds, and an account
(all its keys together) at most ACCOUNT_RPM when that is set. One Lua script call per request (one
round trip) checks both windows and records the request in both atomically, using Redis's clock so
that every host agrees. Without REDIS_URL (the demo) the windows live in this process.

When Redis does not answer within REDIS_TIMEOUT_S, the request is counted in this process instead,
against its share of the limits (divided by WEB_CONCURRENCY, the processes serving the API), and Redis
is left alone for REDIS_RETRY_AFTER_S before one request tries it again: a dead Redis costs one timeout
per retry period, not one per request. The switch is logged once each way; `redis_degraded()` tells.
Money never depends on Redis (it lives in PostgreSQL).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import redis
from django.conf import settings

log = logging.getLogger(__name__)

WINDOW_MS = 60_000

# KEYS: the windows (key first); ARGV: window ms, member, then one limit per window.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local counts = {}
local blocked = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  counts[i] = redis.call('ZCARD', key)
  if blocked == 0 and counts[i] >= tonumber(ARGV[2 + i]) then blocked = i end
end
local result = {blocked}
for i, key in ipairs(KEYS) do
  if blocked == 0 then
    redis.call('ZADD', key, now, ARGV[2])
    redis.call('PEXPIRE', key, window)
    counts[i] = counts[i] + 1
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local reset = window
  if oldest[2] then reset = tonumber(oldest[2]) + window - now end
  table.insert(result, tonumber(ARGV[2 + i]) - counts[i])
  table.insert(result, reset)
end
return result
"""


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome for one request; `scope` says which window refused it ("key" or "account")."""

    allowed: bool
    limit: int
    remaining: int
    reset_ms: int
    scope: str = "key"

    @property
    def reset_s(self) -> int:
        """Seconds until a request slot frees up (1..60)."""
        return min(60, max(1, math.ceil(self.reset_ms / 1000)))

    def headers(self) -> dict[str, str]:
        """Ours (`X-RateLimit-*`, reset in whole seconds) and OpenAI's names for the same window."""
        remaining = str(max(self.remaining, 0))
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": remaining,
            "X-RateLimit-Reset": str(self.reset_s),
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": remaining,
            "x-ratelimit-reset-requests": duration_text(min(max(self.reset_ms, 0), WINDOW_MS)),
        }


def duration_text(ms: int) -> str:
    """A duration as OpenAI's rate-limit headers write it (Go's format): `120ms`, `1.5s`, `6m0s`, `1h0m0s`."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


_client: redis.Redis | None = None
_script = None
_members = itertools.count()
_local: dict[str, deque[float]] = {}
_local_lock = threading.Lock()
# The circuit breaker: Redis is not tried before this (monotonic) time; `_degraded` while it fails.
_retry_at = 0.0
_degraded = False


def _redis_script():
    global _client, _script
    if _script is None:
        timeout = settings.REDIS_TIMEOUT_S
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)
        _script = _client.register_script(_SCRIPT)
    return _script


def _redis_run(keys: list[str], args: list) -> list:
    """Run the script by its SHA on its client: what `Script.__call__` does, without its per-call checks
    for a pipeline (a `Protocol` isinstance) that cost ~10 µs of CPU on every request."""
    script = _redis_script()
    try:
        return script.registered_client.evalsha(script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:  # Redis restarted or flushed its scripts
        return script(keys=keys, args=args)  # loads it again, then runs it


def redis_degraded() -> bool:
    """Whether this process counts rate limits by itself because Redis did not answer (for metrics and /readyz)."""
    return _degraded


def _redis_failed(exc: Exception) -> None:
    global _retry_at, _degraded
    _retry_at = time.monotonic() + settings.REDIS_RETRY_AFTER_S
    if not _degraded:
        _degraded = True
        log.error(
            "Redis does not answer (%s): rate limits are counted in this process, at 1/%d of each limit, until it does",
            type(exc).__name__,
            _processes(),
        )


def _redis_answered() -> None:
    global _degraded
    if _degraded:
        _degraded = False
        log.warning("Redis answers again: rate limits are shared through it again")


def _processes() -> int:
    return max(1, settings.WEB_CONCURRENCY)


def rate_limit_hit(*, key_id: int, limit: int, account_id: int | None = None) -> RateDecision:
    """Count one request of a key (and its account, when ACCOUNT_RPM is set) against the limits."""
    global _retry_at
    windows = [(f"rl:key:{key_id}", limit)]
    if account_id is not None and settings.ACCOUNT_RPM > 0:
        windows.append((f"rl:account:{account_id}", settings.ACCOUNT_RPM))
    counted = None
    if settings.REDIS_URL and time.monotonic() >= _retry_at:
        if _degraded:
            # One request probes Redis; the others keep counting locally meanwhile.
            _retry_at = time.monotonic() + settings.REDIS_RETRY_AFTER_S
        member = f"{os.getpid()}:{threading.get_ident()}:{next(_members)}"
        args = [WINDOW_MS, member, *(cap for _, cap in windows)]
        try:
            raw = _redis_run([name for name, _ in windows], args)
        except (redis.RedisError, OSError) as exc:
            _redis_failed(exc)
        else:
            _redis_answered()
            counted = int(raw[0]), [(int(raw[1 + 2 * i]), int(raw[2 + 2 * i])) for i in range(len(windows))]
    if counted is None:
        if settings.REDIS_URL:
            # This process's share of each limit while the others count theirs.
            windows = [(name, max(1, cap // _processes())) for name, cap in windows]
        counted = _local_hit(windows)
    blocked, per_window = counted
    if blocked:
        remaining, reset = per_window[blocked - 1]
        scope = "key" if blocked == 1 else "account"
        return RateDecision(False, windows[blocked - 1][1], remaining, reset, scope)
    remaining, reset = per_window[0]
    return RateDecision(True, windows[0][1], remaining, reset)


def _local_hit(windows: list[tuple[str, int]]) -> tuple[int, list[tuple[int, int]]]:
    now = time.monotonic() * 1000
    with _local_lock:
        queues = [_local.setdefault(name, deque()) for name, _ in windows]
        for window in queues:
            while window and window[0] <= now - WINDOW_MS:
                window.popleft()
        blocked = next((i for i, (w, (_, cap)) in enumerate(zip(queues, windows, strict=True), 1) if len(w) >= cap), 0)
        if not blocked:
            for window in queues:
                window.append(now)
        return blocked, [
            (cap - len(w), int(w[0] + WINDOW_MS - now) if w else WINDOW_MS)
            for w, (_, cap) in zip(queues, windows, strict=True)
        ]
