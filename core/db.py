"""Database plumbing for the few statements the request path runs outside Django's ORM.

This module holds the one speed trick of the money path (see ARCHITECTURE.md, "Hot-path trade-offs"):
a statement that is its own transaction runs on a connection borrowed from the process's pool for just
its round trip, through a server-side binding cursor so that PostgreSQL prepares it once per
connection. Inside a caller's transaction it runs on that transaction's connection instead. Domain
code calls `fetch_one`; it never looks up connections or pools itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import psycopg.waiting
from asgiref.local import _ThreadCriticalLocal as _THREAD_CRITICAL
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import DatabaseErrorWrapper
from gevent import get_hub
from gevent.hub import Waiter
from psycopg.abc import RV, PQGen
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from core.green import COOPERATIVE

R = TypeVar("R")

logger = logging.getLogger(__name__)

# What "PostgreSQL is unreachable" looks like: a connection refused, dropped or not handed out by the pool in
# time (psycopg_pool's PoolTimeout is a psycopg.OperationalError), wrapped by Django or not.
DATABASE_DOWN: tuple[type[Exception], ...] = (OperationalError, InterfaceError, psycopg.OperationalError)


def is_postgresql() -> bool:
    """Whether the default database is PostgreSQL (single-statement SQL) rather than another backend (ORM)."""
    # From the settings rather than `connection.vendor`: under gevent, looking up a green thread's
    # connection creates its DatabaseWrapper, which the pooled path below does without.
    return settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"] == "django.db.backends.postgresql"


def opened_connection() -> BaseDatabaseWrapper | None:
    """This thread's default database connection if the thread has used it, else None (and none is made).

    What `connections.all(initialized_only=True)` holds for the default alias, read with one lookup on
    the handler's per-thread storage instead of a list of every alias (four times a request). Under
    gevent, where no asyncio loop runs, the storage is read directly: asgiref's `Local` would first ask
    asyncio for a running loop, and catch the error that there is none, on every lookup (0.84 → 0.05 µs).
    """
    local = connections._connections
    storage = local._storage if COOPERATIVE and type(local) is _THREAD_CRITICAL else local
    return getattr(storage, DEFAULT_DB_ALIAS, None)


def could_be_key(value: str, max_length: int | None) -> bool:
    """Whether a client's `value` could be a stored key: PostgreSQL cannot even compare a string holding a
    NUL (the driver refuses it), and one longer than the column holds is no row's."""
    return "\x00" not in value and (max_length is None or len(value) <= max_length)


def in_transaction(db: BaseDatabaseWrapper | None) -> bool:
    """Whether `db` (an `opened_connection()`) has a transaction open."""
    return db is not None and db.in_atomic_block


def release_db() -> None:
    """Give this thread's database connection back (to the pool), unless a transaction is open on it."""
    db = opened_connection()
    if db is not None and not db.in_atomic_block:
        db.close()


_pools: list[ConnectionPool] = []


def _pool() -> ConnectionPool | None:
    """The process's PostgreSQL connection pool (Django's own), or None when pooling is off."""
    if not _pools or _pools[0].closed:
        pool = connection.pool
        if pool is None:
            return None
        if pool.closed:
            pool.open()
        _pools[:] = [pool]
    return _pools[0]


def fetch_one(sql: str, params: dict[str, Any], db: BaseDatabaseWrapper | None) -> tuple | None:
    """Run one statement with `%(name)s` parameters bound server-side and return its first row.

    `db` is this thread's `opened_connection()`, which the caller looked up already. Database errors
    arrive as Django's (`django.db.IntegrityError`, …) whichever connection ran the statement.
    """
    return _run(sql, params, db, _first_row)


def fetch_all(sql: str, params: dict[str, Any], db: BaseDatabaseWrapper | None) -> list[tuple]:
    """Like `fetch_one`, for a statement whose every row the caller reads (a batch of charges)."""
    return _run(sql, params, db, psycopg.Cursor.fetchall)


def _first_row(cursor: psycopg.Cursor) -> tuple | None:
    return cursor.fetchone()


def _run(sql: str, params: dict[str, Any], db: BaseDatabaseWrapper | None, read: Callable[[psycopg.Cursor], R]) -> R:
    if db is not None and db.in_atomic_block:
        # Inside a caller's transaction a savepoint keeps that transaction usable.
        with db.wrap_database_errors, transaction.atomic():
            return _execute(db.connection, sql, params, read)
    pool = None if db is not None and db.connection is not None else _pool()
    if pool is None:
        db = connection if db is None else db
        db.ensure_connection()
        with db.wrap_database_errors:
            return _execute(db.connection, sql, params, read)
    # Alone the statement is its own transaction: a pooled connection for just its round trip,
    # without this thread's Django connection being set up (or even looked up) at all.
    with DatabaseErrorWrapper(connection):
        return _execute_pooled(pool, sql, params, read)


def _execute_pooled(pool: ConnectionPool, sql: str, params: dict[str, Any], read: Callable[[psycopg.Cursor], R]) -> R:
    """`_execute` on a connection borrowed from `pool`, as `with pool.connection()` would run it.

    `pool.connection()` is getconn, then the connection's own context (commit, or on an error a
    rollback whose failure is only logged), then putconn, which checks the connection and replaces it
    if broken. This does the same without the generator-based context managers, and skips the commit
    when the connection is idle (as `commit()` itself does, after taking its lock): in autocommit, as
    Django's pool hands connections out, it always is. Only the pool's `usage_ms` statistic, which
    nothing here reads, is no longer kept.
    """
    raw = pool.getconn()
    try:
        try:
            rows = _execute(raw, sql, params, read)
        except BaseException:
            if not raw.closed:
                try:
                    raw.rollback()
                except Exception as exc:
                    logger.warning("error ignored in rollback on %s: %s", raw, exc)
            raise
        if not raw.closed and raw.pgconn.transaction_status != TransactionStatus.IDLE:
            raw.commit()
        return rows
    finally:
        pool.putconn(raw)


def _execute(raw: psycopg.Connection, sql: str, params: dict[str, Any], read: Callable[[psycopg.Cursor], R]) -> R:
    # A server-side binding cursor (Django's own cursors interpolate values into the text), so that
    # PostgreSQL prepares these statements after a few runs instead of parsing and planning each time.
    with psycopg.Cursor(raw) as cursor:
        cursor.execute(sql, params)
        return read(cursor)


def green_wait(gen: PQGen[RV], fileno: int, interval: float | None = None) -> RV:
    """psycopg's wait function for gevent: each wait is one libev watcher on the socket.

    Under a patched `select`, psycopg falls back to `wait_poll`, whose `select.poll()` is gevent's
    emulation: a poll object, a registration, watchers started and stopped and a timeout on every
    wait, about 0.05 ms of CPU per statement here. psycopg's wait events and readiness are libev's
    (read 1, write 2). `interval` is honoured as psycopg's own functions do (no event: `READY_NONE`),
    which `Connection.notifies(timeout=…)` relies on.
    """
    hub = get_hub()
    loop = hub.loop
    try:
        events = next(gen)
        while True:
            waiter = Waiter(hub)
            watcher = loop.io(fileno, events)
            watcher.start(waiter.switch, pass_events=True)
            timer = None
            if interval is not None:
                timer = loop.timer(max(interval, 0.0))
                timer.start(waiter.switch, psycopg.waiting.READY_NONE)
            try:
                ready = waiter.get()
            finally:
                watcher.stop()
                if timer is not None:
                    timer.stop()
            events = gen.send(ready & psycopg.waiting.READY_RW)
    except StopIteration as done:
        return done.value


def green_wait_install() -> None:
    """Make psycopg wait with `green_wait` in a gevent worker (psycopg reads `waiting.wait` on every wait)."""
    if COOPERATIVE:
        psycopg.waiting.wait = green_wait
