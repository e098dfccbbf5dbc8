"""Database plumbing for the few statements the request path runs outside Django's ORM.

This module holds the one speed trick of the money path (see ARCHITECTURE.md, "Hot-path trade-offs"):
a statement that is its own transaction runs on a connection borrowed from the process's pool for just
its round trip, through a server-side binding cursor so that PostgreSQL prepares it once per
connection. Inside a caller's transaction it runs on that transaction's connection instead. Domain
code calls `fetch_one`; it never looks up connections or pools itself.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import DatabaseErrorWrapper
from psycopg_pool import ConnectionPool

# What "PostgreSQL is unreachable" looks like: a connection refused, dropped or not handed out by the pool in
# time (psycopg_pool's PoolTimeout is a psycopg.OperationalError), wrapped by Django or not.
DATABASE_DOWN: tuple[type[Exception], ...] = (OperationalError, InterfaceError, psycopg.OperationalError)


def is_postgresql() -> bool:
    """Whether the default database is PostgreSQL (single-statement SQL) rather than another backend (ORM)."""
    # From the settings rather than `connection.vendor`: under gevent, looking up a green thread's
    # connection creates its DatabaseWrapper, which the pooled path below does without.
    return settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"] == "django.db.backends.postgresql"


def opened_connection() -> BaseDatabaseWrapper | None:
    """This thread's default database connection if the thread has used it, else None (and none is made)."""
    return next((db for db in connections.all(initialized_only=True) if db.alias == DEFAULT_DB_ALIAS), None)


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
    if db is not None and db.in_atomic_block:
        # Inside a caller's transaction a savepoint keeps that transaction usable.
        with db.wrap_database_errors, transaction.atomic():
            return _fetch_one(db.connection, sql, params)
    pool = None if db is not None and db.connection is not None else _pool()
    if pool is None:
        db = connection if db is None else db
        db.ensure_connection()
        with db.wrap_database_errors:
            return _fetch_one(db.connection, sql, params)
    # Alone the statement is its own transaction: a pooled connection for just its round trip,
    # without this thread's Django connection being set up (or even looked up) at all.
    with DatabaseErrorWrapper(connection), pool.connection() as raw:
        return _fetch_one(raw, sql, params)


def _fetch_one(raw: psycopg.Connection, sql: str, params: dict[str, Any]) -> tuple | None:
    # A server-side binding cursor (Django's own cursors interpolate values into the text), so that
    # PostgreSQL prepares these statements after a few runs instead of parsing and planning each time.
    with psycopg.Cursor(raw) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()
