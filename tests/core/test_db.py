"""core/db.py: the green wait (psycopg waiting on its socket through gevent's loop) and the pooled statement."""

from __future__ import annotations

import gevent
import psycopg
import psycopg.waiting
import pytest
from django.db import DataError, OperationalError, connection

from core.db import fetch_one, green_wait


@pytest.fixture
def green_psycopg(monkeypatch):
    """psycopg waiting with `green_wait`, as a gevent worker has it after `green_wait_install()`."""
    monkeypatch.setattr(psycopg.waiting, "wait", green_wait)


def _connect() -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"], host=s["HOST"], port=s["PORT"], autocommit=True
    )


@pytest.mark.django_db
def test_a_statement_waiting_for_postgresql_lets_other_green_threads_run(green_psycopg):
    order = []
    with _connect() as conn:

        def slow():
            conn.execute("SELECT pg_sleep(0.2)")
            order.append("statement done")

        waiting = gevent.spawn(slow)
        other = gevent.spawn(order.append, "other green thread ran")
        gevent.joinall([waiting, other], raise_error=True)
    assert order == ["other green thread ran", "statement done"]


@pytest.mark.django_db
def test_statements_return_their_rows_and_errors_through_the_green_wait(green_psycopg):
    with _connect() as conn:
        rows = gevent.spawn(lambda: conn.execute("SELECT n, n * 2 FROM generate_series(1, 3) n").fetchall())
        assert rows.get() == [(1, 2), (2, 4), (3, 6)]
        failing = gevent.spawn(conn.execute, "SELECT 1 / 0")
        with pytest.raises(psycopg.errors.DivisionByZero):
            failing.get()


@pytest.mark.django_db
def test_a_wait_with_a_timeout_ends_when_nothing_arrives_and_a_notification_is_received(green_psycopg):
    with _connect() as listener, _connect() as sender:
        listener.execute("LISTEN bench_green")
        assert list(listener.notifies(timeout=0.05)) == []
        sender.execute("NOTIFY bench_green, 'hello'")
        received = list(listener.notifies(timeout=5, stop_after=1))
    assert [n.payload for n in received] == ["hello"]


def _pool_idle() -> int:
    return connection.pool.get_stats()["pool_available"]


@pytest.mark.django_db(transaction=True)
def test_a_statement_alone_borrows_a_pooled_connection_and_gives_it_back_idle():
    assert fetch_one("SELECT %(x)s::int", {"x": 7}, None) == (7,)
    idle = _pool_idle()
    assert fetch_one("SELECT %(x)s::int", {"x": 8}, None) == (8,)
    assert _pool_idle() == idle


@pytest.mark.django_db(transaction=True)
def test_a_failing_statement_alone_raises_djangos_error_and_leaves_its_connection_usable():
    fetch_one("SELECT 1", {}, None)
    idle = _pool_idle()
    with pytest.raises(DataError):
        fetch_one("SELECT 1 / %(x)s::int", {"x": 0}, None)
    assert _pool_idle() == idle
    assert fetch_one("SELECT 1 / %(x)s::int", {"x": 1}, None) == (1,)


@pytest.mark.django_db(transaction=True)
def test_a_connection_broken_by_its_statement_is_replaced_not_handed_out_again():
    with pytest.raises(OperationalError):
        fetch_one("SELECT pg_terminate_backend(pg_backend_pid())", {}, None)
    # Every connection the pool holds now answers (a broken one handed out again would raise).
    for n in range(connection.pool.max_size + 1):
        assert fetch_one("SELECT %(n)s::int", {"n": n}, None) == (n,)


@pytest.mark.django_db
@pytest.mark.parametrize("cooperative", [False, True], ids=["threads", "gevent: the storage read directly"])
def test_opened_connection_is_the_threads_default_connection_once_used_and_never_makes_one(cooperative, monkeypatch):
    import threading

    from django.db import connections

    import core.db
    from core.db import opened_connection

    monkeypatch.setattr(core.db, "COOPERATIVE", cooperative)

    seen = {}

    def fresh_thread():
        seen["before"] = opened_connection()
        seen["made"] = [db.alias for db in connections.all(initialized_only=True)]
        connections["default"].ensure_connection()
        seen["after"] = opened_connection()
        seen["same"] = seen["after"] is connections["default"]
        connections["default"].close()

    thread = threading.Thread(target=fresh_thread)
    thread.start()
    thread.join()
    assert (seen["before"], seen["made"], seen["same"]) == (None, [], True)
    connection.ensure_connection()
    assert opened_connection() is connections["default"]
