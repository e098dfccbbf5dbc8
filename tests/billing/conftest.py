from __future__ import annotations

import pytest

from billing import services


@pytest.fixture(params=["single-statement", "orm"])
def money_path(request, monkeypatch):
    """Run a test through both implementations of holds: one SQL statement (PostgreSQL) and the ORM
    (every other database, e.g. the SQLite demo)."""
    if request.param == "orm":
        monkeypatch.setattr(services, "single_statement", lambda: False)
    return request.param
