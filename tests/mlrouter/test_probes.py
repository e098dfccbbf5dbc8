"""/healthz and /readyz: served straight from WSGI, whatever the Host and the HTTPS settings."""

from __future__ import annotations

import json

import pytest
from django.db import connections

import mlrouter.probes
from tests.mlrouter.wsgi import wsgi_call


@pytest.fixture(autouse=True)
def _fresh_probe_state(monkeypatch):
    monkeypatch.setattr(mlrouter.probes, "_migrated", False)
    monkeypatch.setattr(mlrouter.probes, "_redis", None)


def probe(path: str, **headers: str) -> tuple[int, dict]:
    status, response_headers, body = wsgi_call(path, headers=headers)
    assert response_headers["Content-Type"] == "application/json"
    assert response_headers["Cache-Control"] == "no-store"
    return int(status.split()[0]), json.loads(body)


def test_healthz_answers_without_touching_the_database():
    # No database fixture: any query would raise here.
    assert probe("/healthz") == (200, {"status": "ok"})


@pytest.mark.django_db(transaction=True)  # the probe closes its connection, as it must
def test_readyz_is_ready_when_postgresql_redis_and_migrations_are(settings):
    assert settings.REDIS_URL  # the suite runs against the real Redis
    assert probe("/readyz") == (
        200,
        {
            "status": "ready",
            "checks": {"database": "ok", "redis": "ok", "migrations": "ok"},
            "rate_limits": "shared",
            "spooled_settlements": 0,
        },
    )


@pytest.mark.django_db(transaction=True)  # the probe closes its connection, as it must
def test_probes_answer_any_host_over_plain_http(settings):
    settings.ALLOWED_HOSTS = ["api.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    for path in ("/healthz", "/readyz"):
        status, _ = probe(path, HTTP_HOST="10.0.0.7:8000")
        assert status == 200
    # The site still refuses that host.
    status, _, _ = wsgi_call("/admin/login/", headers={"HTTP_HOST": "10.0.0.7:8000"})
    assert status.startswith("400")


@pytest.mark.django_db(transaction=True)  # the probe closes its connection, as it must
def test_readyz_stays_200_but_degraded_naming_redis_when_it_does_not_answer(settings):
    # Each process keeps serving with its own rate-limit windows: no reason to take it out of the balancer.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    status, body = probe("/readyz")
    assert (status, body["status"], body["checks"]["redis"]) == (200, "degraded", "unreachable")
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db(transaction=True)  # the probe closes its connection, as it must
def test_readyz_is_503_naming_pending_migrations(monkeypatch):
    class OnePending:
        def __init__(self, connection):
            self.loader = type("Loader", (), {"graph": type("Graph", (), {"leaf_nodes": lambda self: []})()})()

        def migration_plan(self, targets):
            return [("billing.0099_future", False)]

    monkeypatch.setattr(mlrouter.probes, "MigrationExecutor", OnePending)
    status, body = probe("/readyz")
    assert (status, body["checks"]["migrations"]) == (503, "1 pending")


@pytest.mark.django_db(transaction=True)  # the probe closes its connection, as it must
def test_readyz_is_503_when_the_database_does_not_answer_and_says_no_secret(monkeypatch):
    def refused(self):
        raise OSError("connection refused: postgres://user:s3cret@db/x")

    monkeypatch.setattr(type(connections["default"]), "cursor", refused)
    status, body = probe("/readyz")
    assert status == 503
    assert body["checks"] == {"database": "unreachable", "redis": "ok", "migrations": "unknown"}
    assert "s3cret" not in json.dumps(body)
