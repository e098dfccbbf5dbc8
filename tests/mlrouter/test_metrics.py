"""GET /metrics: never public, and it counts what the WSGI entry answered and what settlement charged."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from billing.services import hold_place
from core import metrics as core_metrics
from tests.completions import test_chat_view
from tests.completions.test_chat_view import HI, FakeProvider, Shop, completion
from tests.factories import funded_account
from tests.mlrouter.wsgi import wsgi_call

TOKEN = "metrics-token-0123456789"

# The scripted provider and the priced model routed to it, as the chat view's tests use them.
provider_server = test_chat_view.provider_server
provider = test_chat_view.provider
shop = test_chat_view.shop


def scrape(**headers: str) -> tuple[int, str]:
    status, _, body = wsgi_call("/metrics", headers=headers)
    return int(status.split()[0]), body.decode()


def samples(settings) -> dict[tuple[str, frozenset], float]:
    settings.METRICS_TOKEN = TOKEN
    status, text = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def post_chat(shop: Shop, body: dict) -> tuple[int, dict]:
    status, _, raw = wsgi_call(
        "/v1/chat/completions",
        method="POST",
        headers={"HTTP_AUTHORIZATION": f"Bearer {shop.key}"},
        body=json.dumps(body).encode(),
    )
    return int(status.split()[0]), json.loads(raw)


# --- Who may scrape ----------------------------------------------------------------------------------------


def test_metrics_are_refused_to_everyone_by_default(settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    assert scrape()[0] == 403
    assert scrape(REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer ")[0] == 403


@pytest.mark.django_db(transaction=True)  # a scrape closes its connection, as the probes do
def test_the_token_opens_them_and_a_wrong_token_does_not(settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, []
    assert scrape(HTTP_AUTHORIZATION="Bearer not-the-token")[0] == 403
    assert scrape(HTTP_AUTHORIZATION=TOKEN)[0] == 403  # the scheme is required
    status, text = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert status == 200
    assert "# TYPE mlrouter_requests_total counter" in text


@pytest.mark.django_db(transaction=True)
def test_an_allowed_network_may_scrape_without_a_token_and_others_may_not(settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ["10.0.0.0/8", "::1"]
    assert scrape(REMOTE_ADDR="10.1.2.3")[0] == 200
    assert scrape(REMOTE_ADDR="::1")[0] == 200
    assert scrape(REMOTE_ADDR="192.168.1.5")[0] == 403
    assert scrape(REMOTE_ADDR="not an address")[0] == 403


@pytest.mark.django_db(transaction=True)
def test_metrics_answer_any_host_over_plain_http(settings):
    settings.ALLOWED_HOSTS = ["api.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.METRICS_TOKEN = TOKEN
    assert scrape(HTTP_HOST="10.0.0.7:8000", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")[0] == 200


# --- What is counted ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_answer_is_counted_by_surface_model_provider_and_status_with_its_charge(
    settings, shop: Shop, provider: FakeProvider
):
    model, upstream = shop.model.public_id, shop.model.routes.get().provider.name
    before = samples(settings)
    provider.answer(completion("Hello there", {"prompt_tokens": 13, "completion_tokens": 7}))

    status, body = post_chat(shop, {"model": model, "messages": HI})

    assert status == 200
    after = samples(settings)
    labels = {"surface": "chat", "model": model, "provider": upstream}
    assert (
        value(after, "mlrouter_requests_total", **labels, status="200")
        - value(before, "mlrouter_requests_total", **labels, status="200")
        == 1
    )
    assert (
        value(after, "mlrouter_generations_total", **labels, status="completed")
        - value(before, "mlrouter_generations_total", **labels, status="completed")
        == 1
    )
    charged = value(after, "mlrouter_charged_usd_total", **labels) - value(
        before, "mlrouter_charged_usd_total", **labels
    )
    # The counter is a float; to its precision it is the exact charge (13 × $0.15 / 1M + 7 × $0.60 / 1M).
    assert Decimal(str(charged)).quantize(Decimal("0.00000001")) == Decimal("0.00000615")
    assert body["usage"]["cost"] == pytest.approx(charged)
    duration = "mlrouter_generation_duration_seconds_count"
    assert value(after, duration, surface="chat") - value(before, duration, surface="chat") == 1


@pytest.mark.django_db(transaction=True)
def test_a_refusal_before_routing_is_counted_without_model_or_provider(settings, shop: Shop, provider: FakeProvider):
    before = samples(settings)
    status, _, _ = wsgi_call(
        "/v1/chat/completions", method="POST", headers={"HTTP_AUTHORIZATION": "Bearer nope"}, body=b"{}"
    )
    assert status.startswith(("400", "401"))
    code = status.split()[0]
    after = samples(settings)
    labels = {"surface": "chat", "model": "", "provider": "", "status": code}
    assert value(after, "mlrouter_requests_total", **labels) - value(before, "mlrouter_requests_total", **labels) == 1


@pytest.mark.django_db(transaction=True)
def test_a_failing_provider_is_counted_as_an_upstream_error_of_its_kind(settings, shop: Shop, provider: FakeProvider):
    upstream = shop.model.routes.get().provider.name
    before = samples(settings)
    provider.answer({"error": {"message": "boom"}}, status=500)

    status, _ = post_chat(shop, {"model": shop.model.public_id, "messages": HI})

    assert status == 502
    after = samples(settings)
    errors = {"provider": upstream, "kind": "http_error"}
    assert (
        value(after, "mlrouter_upstream_errors_total", **errors)
        - value(before, "mlrouter_upstream_errors_total", **errors)
        == 1
    )
    failed = {"surface": "chat", "model": shop.model.public_id, "provider": "", "status": "failed"}
    assert (
        value(after, "mlrouter_generations_total", **failed) - value(before, "mlrouter_generations_total", **failed)
        == 1
    )


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_provider_is_counted_as_unreachable(settings, shop: Shop, provider: FakeProvider):
    dead = shop.model.routes.get().provider
    dead.base_url = "http://127.0.0.1:1/v1"  # nothing listens there
    dead.save(update_fields=["base_url"])
    errors = {"provider": dead.name, "kind": "unreachable"}
    before = value(samples(settings), "mlrouter_upstream_errors_total", **errors)

    status, _ = post_chat(shop, {"model": shop.model.public_id, "messages": HI})

    assert status == 503
    assert value(samples(settings), "mlrouter_upstream_errors_total", **errors) - before == 1


@pytest.mark.django_db(transaction=True)
def test_open_holds_are_computed_from_the_database_when_scraped(settings):
    account = funded_account("5.00")
    assert value(samples(settings), "mlrouter_open_holds") == 0
    hold_place(account_id=account.pk, amount=Decimal("0.25"), reference="gen-metrics-1")
    hold_place(account_id=account.pk, amount=Decimal("0.50"), reference="gen-metrics-2")

    found = samples(settings)

    assert value(found, "mlrouter_open_holds") == 2
    assert value(found, "mlrouter_open_holds_usd") == 0.75
    assert value(found, "mlrouter_oldest_open_hold_seconds") >= 0


@pytest.mark.django_db(transaction=True)
def test_a_state_gauge_reads_what_its_feeder_says_and_unfed_ones_read_zero(settings, monkeypatch):
    monkeypatch.setattr(core_metrics, "_feeders", {})
    assert value(samples(settings), "mlrouter_spooled_settlements") == 0
    spooled = [3]
    core_metrics.state_feed("mlrouter_spooled_settlements", lambda: spooled[0])
    core_metrics.state_feed("mlrouter_redis_fallback_active", lambda: 1)

    found = samples(settings)

    assert value(found, "mlrouter_spooled_settlements") == 3
    assert value(found, "mlrouter_redis_fallback_active") == 1
    assert value(found, "mlrouter_postgres_fallback_active") == 0
    spooled[0] = 0
    assert value(samples(settings), "mlrouter_spooled_settlements") == 0
    with pytest.raises(ValueError, match="unknown state gauge"):
        core_metrics.state_feed("mlrouter_made_up", lambda: 1)


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_database_shows_as_the_postgresql_fallback_state(settings, monkeypatch):
    from django.db import OperationalError

    from completions import errors

    assert value(samples(settings), "mlrouter_postgres_fallback_active") == 0

    refusal = errors.database_unavailable(OperationalError("connection refused"))

    assert refusal.status == 503
    assert value(samples(settings), "mlrouter_postgres_fallback_active") == 1
    monkeypatch.setattr(errors, "DATABASE_DOWN_REPORT_SECONDS", 0.0)
    assert value(samples(settings), "mlrouter_postgres_fallback_active") == 0
