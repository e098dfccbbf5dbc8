"""The one in-process cache idiom: fresh, then one caller reloads while the others use the old value."""

from __future__ import annotations

import time

import pytest

from core.cache import ProcessCache, cache_named, caches_clear


@pytest.fixture
def cache():
    made: list[ProcessCache] = []

    def make(**options) -> ProcessCache:
        made.append(ProcessCache(f"test cache {len(made)} {time.monotonic_ns()}", **options))
        return made[-1]

    return make


def test_a_fresh_entry_is_answered_without_loading(cache):
    c = cache(ttl=60, max_entries=10)
    loads = []
    assert c.get("k", lambda: loads.append(1) or "v") == "v"
    assert c.get("k", lambda: loads.append(1) or "other") == "v"
    assert loads == [1]


def test_while_an_expired_entry_is_reloaded_other_callers_get_the_old_value(cache):
    c = cache(ttl=0.05, grace=5, max_entries=10)
    c.get("k", lambda: "old")
    time.sleep(0.06)
    meanwhile = []

    def reload() -> str:
        meanwhile.append(c.get("k", lambda: "second reload"))  # another request arrives during the reload
        return "new"

    assert c.get("k", reload) == "new"
    assert meanwhile == ["old"]
    assert c.get("k", lambda: "unused") == "new"


def test_an_entry_past_its_reload_grace_is_never_used(cache):
    c = cache(ttl=0.01, grace=0.01, max_entries=10)
    c.get("k", lambda: "old")
    time.sleep(0.03)
    assert c.get("k", lambda: "new") == "new"


def test_a_ttl_read_from_the_settings_applies_to_each_store(cache, settings):
    settings.AUTH_CACHE_SECONDS = 0.01
    c = cache(ttl=lambda: settings.AUTH_CACHE_SECONDS, max_entries=10)
    c.put("k", "v")
    time.sleep(0.02)
    assert c.peek("k") is None
    settings.AUTH_CACHE_SECONDS = 60
    c.put("k", "v")
    time.sleep(0.02)
    assert c.peek("k") == "v"


def test_past_its_bound_the_oldest_entries_go_first(cache):
    c = cache(max_entries=3)
    for key in "abcd":
        c.put(key, key.upper())
    assert len(c) == 3
    assert c.peek("a") is None
    assert [c.peek(k) for k in "bcd"] == ["B", "C", "D"]


def test_a_cache_without_ttl_never_expires_and_pop_forgets(cache):
    c = cache(max_entries=3)
    c.put("k", "v", now=time.monotonic() - 10**9)
    assert c.peek("k") == "v"
    assert c.pop("k") == "v"
    assert c.peek("k") is None
    assert c.pop("k") is None


def test_every_cache_is_registered_and_cleared_at_once(cache):
    c = cache(ttl=60, max_entries=10)
    c.put("k", "v")
    assert cache_named(c.name) is c
    caches_clear()
    assert len(c) == 0


def test_two_caches_cannot_share_a_name(cache):
    c = cache(max_entries=1)
    with pytest.raises(ValueError):
        ProcessCache(c.name, max_entries=1)


def test_the_request_path_caches_are_all_registered():
    import accounts.principals  # noqa: F401
    import completions.early_start
    import completions.routing
    import completions.upstreams.openai_chat  # noqa: F401
    import core.after_response  # noqa: F401

    for name in ("api keys", "catalog", "upstream targets", "account headroom", "after-response work"):
        assert isinstance(cache_named(name), ProcessCache)
