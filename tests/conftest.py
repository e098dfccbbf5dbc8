"""Suite-wide fixtures. Tests run against the real PostgreSQL and Redis (see Makefile)."""

from __future__ import annotations

import os

import pytest

from core.cache import caches_clear


def pytest_configure(config) -> None:
    # Parallel workers share one Redis database: each keeps its cache entries under its own prefix, so
    # one worker's cleanup never drops another's counters. Set before any cache is opened.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        from django.conf import settings

        settings.CACHES["default"]["KEY_PREFIX"] = worker


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test starts with nothing cached in this process (keys, catalog, headroom, …)."""
    caches_clear()
    yield
    caches_clear()


@pytest.fixture(autouse=True)
def _private_spool(tmp_path, monkeypatch):
    """Each test has its own settlement spool folder, replayed only when the test says so."""
    from django.conf import settings

    from completions import spool

    monkeypatch.setattr(settings, "SETTLEMENT_SPOOL_DIR", str(tmp_path / "settlement-spool"))
    monkeypatch.setattr(spool, "_loop_started", True)  # no background replay: tests call spool_replay()
    monkeypatch.setattr(spool, "_current", None)
    monkeypatch.setattr(spool, "_sealed", [])
    monkeypatch.setattr(spool, "_pending", 0)


@pytest.fixture(params=["single-statement", "orm"])
def money_path(request, monkeypatch):
    """Run a test through both implementations of the money path: one SQL statement per step on
    PostgreSQL (billing/statements.py) and the ORM (every other database, e.g. the SQLite demo)."""
    if request.param == "orm":
        from billing import services

        monkeypatch.setattr(services, "is_postgresql", lambda: False)
    return request.param
