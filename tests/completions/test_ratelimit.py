"""Per-key and per-account request windows, in Redis (shared by processes) and in-process (demo)."""

from __future__ import annotations

import re
import secrets

import pytest
import redis
from django.conf import settings as django_settings

from completions import ratelimit


@pytest.fixture(params=["redis", "in-process"])
def backend(request, settings):
    if request.param == "in-process":
        settings.REDIS_URL = ""
        ratelimit._local.clear()
    return request.param


def _ids() -> tuple[int, int, int]:
    base = secrets.randbelow(10**12) + 10**12
    return base, base + 1, base + 2


@pytest.fixture(autouse=True)
def _clean_redis():
    yield
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in client.scan_iter("rl:*:1????????????"):
        client.delete(key)


def test_a_key_gets_its_rpm_and_then_a_refusal(backend):
    key, _, _ = _ids()
    decisions = [ratelimit.rate_limit_hit(key_id=key, limit=3) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    refused = decisions[3]
    assert (refused.limit, refused.scope) == (3, "key")
    assert 1 <= refused.reset_s <= 60
    headers = refused.headers()
    reset = headers.pop("x-ratelimit-reset-requests")
    assert headers == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "60",
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "0",
    }
    assert re.fullmatch(r"(59(\.\d{1,3})?s|1m0s)", reset), reset


def test_openais_header_names_carry_the_same_window_with_the_reset_as_a_duration():
    decision = ratelimit.RateDecision(allowed=True, limit=60, remaining=12, reset_ms=1_500)
    assert decision.headers() == {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "12",
        "X-RateLimit-Reset": "2",
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "12",
        "x-ratelimit-reset-requests": "1.5s",
    }


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (17, "17ms"),
        (999, "999ms"),
        (1_000, "1s"),
        (1_500, "1.5s"),
        (59_874, "59.874s"),
        (60_000, "1m0s"),
        (61_000, "1m1s"),
        (360_000, "6m0s"),
        (3_723_456, "1h2m3.456s"),
    ],
)
def test_durations_are_written_as_openai_writes_them(ms, text):
    assert ratelimit.duration_text(ms) == text


def test_keys_have_separate_windows(backend):
    first, second, _ = _ids()
    assert ratelimit.rate_limit_hit(key_id=first, limit=1).allowed
    assert not ratelimit.rate_limit_hit(key_id=first, limit=1).allowed
    assert ratelimit.rate_limit_hit(key_id=second, limit=1).allowed


def test_an_account_cap_counts_all_its_keys_together(backend, settings):
    settings.ACCOUNT_RPM = 3
    first, second, account = _ids()
    hits = [
        ratelimit.rate_limit_hit(key_id=key_id, limit=100, account_id=account)
        for key_id in (first, second, first, second)
    ]
    assert [h.allowed for h in hits] == [True, True, True, False]
    assert (hits[-1].scope, hits[-1].limit) == ("account", 3)
    # The refused request used up nothing: the second key has one request in its window, not two.
    assert ratelimit.rate_limit_hit(key_id=second, limit=2).allowed
    assert not ratelimit.rate_limit_hit(key_id=second, limit=2).allowed


def test_no_account_cap_by_default(backend, settings):
    settings.ACCOUNT_RPM = 0
    key, _, account = _ids()
    assert all(ratelimit.rate_limit_hit(key_id=key, limit=10, account_id=account).allowed for _ in range(10))


def test_with_redis_unreachable_a_key_gets_its_process_share_and_each_switch_is_logged_once(
    settings, monkeypatch, caplog
):
    monkeypatch.setattr(ratelimit, "_script", None)
    monkeypatch.setattr(ratelimit, "_retry_at", 0.0)
    monkeypatch.setattr(ratelimit, "_degraded", False)
    real = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.WEB_CONCURRENCY = 2
    key, _, _ = _ids()
    decisions = [ratelimit.rate_limit_hit(key_id=key, limit=6) for _ in range(4)]
    # 6 a minute shared by 2 processes: this one allows 3, and says so in its headers.
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[3].headers()["X-RateLimit-Limit"] == "3"
    assert ratelimit.redis_degraded()
    assert [r.levelname for r in caplog.records if r.name == "completions.ratelimit"] == ["ERROR"]

    # Redis answers again: the next request after the retry period goes back to the shared window.
    settings.REDIS_URL = real
    monkeypatch.setattr(ratelimit, "_script", None)
    monkeypatch.setattr(ratelimit, "_retry_at", 0.0)
    assert ratelimit.rate_limit_hit(key_id=key, limit=6).allowed
    assert not ratelimit.redis_degraded()
    assert [r.levelname for r in caplog.records if r.name == "completions.ratelimit"] == ["ERROR", "WARNING"]


def test_a_redis_that_accepts_but_never_answers_is_given_up_on_and_not_asked_again_until_the_retry_period(
    settings, monkeypatch
):
    # A listening socket nobody reads: what a frozen (SIGSTOPped) Redis looks like to a client.
    import socket

    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(64)
    monkeypatch.setattr(ratelimit, "_script", None)
    monkeypatch.setattr(ratelimit, "_retry_at", 0.0)
    monkeypatch.setattr(ratelimit, "_degraded", False)
    settings.REDIS_URL = f"redis://127.0.0.1:{frozen.getsockname()[1]}/0"
    settings.REDIS_RETRY_AFTER_S = 60
    calls = []
    real_script = ratelimit._redis_script

    def counted():
        calls.append(1)
        return real_script()

    monkeypatch.setattr(ratelimit, "_redis_script", counted)
    try:
        key, _, _ = _ids()
        assert all(ratelimit.rate_limit_hit(key_id=key, limit=100).allowed for _ in range(20))
    finally:
        frozen.close()
    assert ratelimit.redis_degraded()
    assert len(calls) == 1  # one timeout, then the circuit stays open


def test_the_script_is_loaded_again_when_redis_forgot_it_and_the_window_keeps_counting():
    key, _, _ = _ids()
    assert ratelimit.rate_limit_hit(key_id=key, limit=2).allowed
    redis.Redis.from_url(django_settings.REDIS_URL).script_flush()
    decisions = [ratelimit.rate_limit_hit(key_id=key, limit=2) for _ in range(2)]
    assert [d.allowed for d in decisions] == [True, False]
    assert not ratelimit.redis_degraded()
