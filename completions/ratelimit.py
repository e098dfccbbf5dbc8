"""Requests-per-minute limits per API key, shared by every process through Redis.

A sliding window: a key may make at most `limit` requests in any 60 seconds. One Lua script call
per request (one round trip) checks and records atomically, using Redis's clock so that every host
agrees. Without REDIS_URL (the demo) the window lives in this process.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import redis
from django.conf import settings

WINDOW_MS = 60_000

_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  count = count + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {allowed, limit - count, reset}
"""


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_ms: int

    @property
    def reset_s(self) -> int:
        """Seconds until a request slot frees up (1..60)."""
        return min(60, max(1, math.ceil(self.reset_ms / 1000)))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(self.reset_s),
        }


_client: redis.Redis | None = None
_script = None
_members = itertools.count()
_local: dict[int, deque[float]] = {}
_local_lock = threading.Lock()


def _redis_script():
    global _client, _script
    if _script is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        _script = _client.register_script(_SCRIPT)
    return _script


def rate_limit_hit(*, key_id: int, limit: int) -> RateDecision:
    """Count one request of a key against its per-minute limit."""
    if settings.REDIS_URL:
        member = f"{os.getpid()}:{threading.get_ident()}:{next(_members)}"
        allowed, remaining, reset = _redis_script()(keys=[f"rl:key:{key_id}"], args=[WINDOW_MS, limit, member])
        return RateDecision(bool(allowed), limit, int(remaining), int(reset))
    return _local_hit(key_id, limit)


def _local_hit(key_id: int, limit: int) -> RateDecision:
    now = time.monotonic() * 1000
    with _local_lock:
        window = _local.setdefault(key_id, deque())
        while window and window[0] <= now - WINDOW_MS:
            window.popleft()
        allowed = len(window) < limit
        if allowed:
            window.append(now)
        reset = int(window[0] + WINDOW_MS - now) if window else WINDOW_MS
        return RateDecision(allowed, limit, limit - len(window), reset)
