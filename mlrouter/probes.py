"""Liveness and readiness probes, served straight from WSGI (mlrouter/wsgi.py).

They answer before Django's host validation and HTTPS redirect: an orchestrator calls them on the
container's own address over plain HTTP, which neither ALLOWED_HOSTS nor SECURE_SSL_REDIRECT allows.
They say nothing secret: each check is `ok` or a short reason, never a URL or a password.

- `GET /healthz`: the process answers (no database, no Redis): restart the container if it does not.
- `GET /readyz`: PostgreSQL answers, Redis answers (when configured) and every migration is applied:
  send traffic only when it is 200. A failing database or migration check makes it 503, naming which.
  Redis down is not a reason to stop serving (rate limits then count in each process, money never
  depends on Redis): the answer stays 200 with `"status": "degraded"`, so that a Redis outage does not
  take every instance out of the load balancer at once. It also reports this process's rate-limit
  mode and how many settlements it holds in the spool (PostgreSQL was unreachable).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

log = logging.getLogger(__name__)

# A probe must answer fast even when what it checks hangs (the orchestrator's own timeout is ~1 s).
REDIS_TIMEOUT_S = 0.1
_migrated = False  # once every migration is applied it stays so for this process's life
_redis: redis.Redis | None = None


def _answer(start_response: Callable, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(payload))),
        ("Cache-Control", "no-store"),
    ]
    start_response(status, headers)
    return [payload]


def healthz(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    """Liveness: the worker is up and serving."""
    return _answer(start_response, "200 OK", {"status": "ok"})


def _database() -> str:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        log.warning("readiness: the database does not answer: %s", type(exc).__name__)
        return "unreachable"
    finally:
        connection.close()  # a probe holds no connection between calls
    return "ok"


def _redis_check() -> str:
    global _redis
    if not settings.REDIS_URL:
        return "not configured"
    if _redis is None:
        _redis = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
    try:
        _redis.ping()
    except redis.RedisError as exc:
        log.warning("readiness: Redis does not answer: %s", type(exc).__name__)
        return "unreachable"
    return "ok"


def _migrations() -> str:
    global _migrated
    if _migrated:
        return "ok"
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        log.warning("readiness: migrations could not be checked: %s", type(exc).__name__)
        return "unknown"
    finally:
        connection.close()
    if pending:
        return f"{len(pending)} pending"
    _migrated = True
    return "ok"


def readyz(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    """Readiness: PostgreSQL, Redis and the schema, each `ok` or why not; 503 unless all are fine."""
    from completions.ratelimit import redis_degraded
    from completions.spool import spool_pending_count

    checks = {"database": _database(), "redis": _redis_check()}
    checks["migrations"] = _migrations() if checks["database"] == "ok" else "unknown"
    ready = checks["database"] == "ok" and checks["migrations"] == "ok"
    degraded = checks["redis"] not in ("ok", "not configured") or redis_degraded()
    status = "200 OK" if ready else "503 Service Unavailable"
    body = {
        "status": "not ready" if not ready else "degraded" if degraded else "ready",
        "checks": checks,
        "rate_limits": "per-process" if redis_degraded() or not settings.REDIS_URL else "shared",
        "spooled_settlements": spool_pending_count(),
    }
    return _answer(start_response, status, body)


PROBES: dict[tuple[str, str], Callable] = {("GET", "/healthz"): healthz, ("GET", "/readyz"): readyz}
