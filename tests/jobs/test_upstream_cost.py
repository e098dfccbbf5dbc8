"""Upstream cost: recorded per generation from the provider's own lookup, thin margins flagged once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from billing.models import ReconciliationRun
from billing.reconciliation import reconcile_run
from completions.models import Generation
from tests.factories import ProviderFactory, funded_account
from tests.jobs.conftest import charged_generation

pytestmark = pytest.mark.django_db

# What the fake gateway says it charged, by upstream generation id (raw JSON numbers, as OpenRouter sends).
UPSTREAM_COSTS = {"up-thin": "0.0019", "up-fat": "0.001"}


class GenerationLookup(BaseHTTPRequestHandler):
    """OpenRouter's GET /api/v1/generation?id=…: 404 until the stats exist."""

    seen_auth: list[str] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        upstream_id = parse_qs(url.query).get("id", [""])[0]
        GenerationLookup.seen_auth.append(self.headers.get("Authorization", ""))
        if url.path != "/api/v1/generation" or upstream_id not in UPSTREAM_COSTS:
            self.send_response(404)
            self.end_headers()
            return
        body = f'{{"data": {{"id": "{upstream_id}", "total_cost": {UPSTREAM_COSTS[upstream_id]}}}}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def gateway(settings) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), GenerationLookup)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.RECONCILE_COST_LOOKUP_PROVIDERS = ["gateway"]
    settings.RECONCILE_MARGIN_ALERT_PCT = "10"
    GenerationLookup.seen_auth = []
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1"
    server.shutdown()
    server.server_close()


def test_upstream_costs_are_looked_up_recorded_and_a_thin_margin_flagged_once(gateway):
    provider = ProviderFactory(name="gateway", base_url=gateway, api_key="sk-gateway-secret-0001")
    account = funded_account("10.00")
    ago = timedelta(minutes=2)
    thin = charged_generation(account, "0.002", provider=provider, upstream_id="up-thin", finished_ago=ago)
    fat = charged_generation(account, "0.002", provider=provider, upstream_id="up-fat", finished_ago=ago)
    unpublished = charged_generation(account, "0.002", provider=provider, upstream_id="up-later", finished_ago=ago)
    just_now = charged_generation(account, "0.002", provider=provider, upstream_id="up-fat")

    run = reconcile_run(trigger="test")
    again = reconcile_run(trigger="test")

    upstream = dict(Generation.objects.values_list("pk", "upstream_cost"))
    assert upstream == {thin.pk: Decimal("0.0019"), fat.pk: Decimal("0.001"), unpublished.pk: None, just_now.pk: None}
    finding = run.findings.get()
    # $0.002 sold, $0.0019 paid: a margin of $0.0001 = 5%, under the 10% alert threshold.
    assert (finding.kind, finding.reference, finding.amount) == ("low_margin", thin.pk, Decimal("0.0001"))
    assert "gateway" in finding.detail and "below 10%" in finding.detail
    assert (run.counts["upstream_costs_recorded"], run.counts["low_margins"]) == (2, 1)
    assert run.counts["upstream_by_provider"]["gateway"] == {
        "generations": 2,
        "cost": "0.0040000000",
        "upstream_cost": "0.0029000000",
        "margin_pct": "27.50",
    }
    assert set(GenerationLookup.seen_auth) == {"Bearer sk-gateway-secret-0001"}
    assert again.status == ReconciliationRun.Status.CLEAN
    assert again.counts["upstream_costs_recorded"] == 0


def test_an_upstream_cost_reported_in_usage_above_our_price_is_flagged(settings):
    settings.RECONCILE_MARGIN_ALERT_PCT = "0"
    account = funded_account("10.00")
    loss = charged_generation(account, "0.001")
    Generation.objects.filter(pk=loss.pk).update(upstream_cost=Decimal("0.0012"))
    charged_generation(account, "0.001")  # no upstream cost known: nothing to compare

    run = reconcile_run(trigger="test")

    assert [(f.kind, f.reference, f.amount) for f in run.findings.all()] == [
        ("low_margin", loss.pk, Decimal("-0.0002"))
    ]


def test_an_unreachable_lookup_is_counted_and_does_not_fail_the_run(settings):
    settings.RECONCILE_COST_LOOKUP_PROVIDERS = ["down"]
    provider = ProviderFactory(name="down", base_url="http://127.0.0.1:9/api/v1")
    account = funded_account("10.00")
    generation = charged_generation(
        account, "0.002", provider=provider, upstream_id="x", finished_ago=timedelta(minutes=5)
    )

    run = reconcile_run(trigger="test")

    assert run.status == ReconciliationRun.Status.CLEAN
    assert run.counts["upstream_cost_lookups_failed"] == 1
    generation.refresh_from_db()
    assert generation.upstream_cost is None


def test_gateway_lookup_payload_is_read_as_decimal_not_float():
    assert json.loads('{"c": 0.0019}', parse_float=Decimal)["c"] == Decimal("0.0019")
