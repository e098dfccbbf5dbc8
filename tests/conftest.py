"""Suite-wide fixtures. Tests run against the real PostgreSQL and Redis (see Makefile)."""

from __future__ import annotations

import pytest

from accounts.principals import principal_cache_clear


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    """Each test starts with no key cached in this process."""
    principal_cache_clear()
    yield
    principal_cache_clear()
