"""platform/monitoring: the Grafana dashboard and the alert rules parse, and name only metrics the app exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mlrouter.metrics import metrics
from tests.mlrouter.wsgi import wsgi_call

MONITORING = Path(__file__).resolve().parents[1] / "platform" / "monitoring"
METRIC = re.compile(r"\bmlrouter_[a-z0-9_]+\b")
TOKEN = "monitoring-test-token-0123"


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


@pytest.fixture
def families(settings) -> dict[str, str]:
    """The metric families a scrape of this app carries (even those with no sample yet), by type."""
    assert metrics  # the endpoint under test
    settings.METRICS_TOKEN = TOKEN
    status, _, body = wsgi_call("/metrics", headers={"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"})
    assert status.startswith("200")
    return {family.name: family.type for family in text_string_to_metric_families(body.decode())}


def series_of(families: dict[str, str]) -> set[str]:
    """The series names PromQL can select for these families."""
    return {name + suffix for name, kind in families.items() for suffix in SUFFIXES.get(kind, ("",))}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    exprs = []
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"], panel
        exprs += [target["expr"] for target in panel["targets"]]
    return exprs


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in ("page", "warn")
        assert rule["annotations"]["summary"]
    return rules


def test_the_prometheus_config_loads_the_alert_rules():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yaml"]
    (job,) = config["scrape_configs"]
    assert (job["job_name"], job["metrics_path"], job["authorization"]["type"]) == ("mlrouter", "/metrics", "Bearer")


@pytest.mark.django_db(transaction=True)  # a scrape closes its connection
def test_every_metric_the_dashboard_and_the_alerts_name_is_exported(families: dict[str, str]):
    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    named = {name for expr in exprs for name in METRIC.findall(expr)}

    assert named, "no ML Router metric named at all"
    assert named - series_of(families) == set()


@pytest.mark.django_db(transaction=True)
def test_every_exported_metric_family_is_on_the_dashboard(families: dict[str, str]):
    on_dashboard = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    ours = {name: kind for name, kind in families.items() if name.startswith("mlrouter_")}
    assert len(ours) == 12
    missing = {name for name in ours if not series_of({name: ours[name]}) & on_dashboard}
    assert missing == set()


def test_the_alerts_cover_what_an_operator_is_paged_for():
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    wanted = {
        "MLRouterHigh5xxRate": 'status=~"5.."',
        "MLRouterUpstreamErrors": "mlrouter_upstream_errors_total",
        "MLRouterOpenHoldsGrowing": "mlrouter_open_holds",
        "MLRouterRedisFallbackActive": "mlrouter_redis_fallback_active",
        "MLRouterPostgresFallbackActive": "mlrouter_postgres_fallback_active",
        "MLRouterSettlementsSpooled": "mlrouter_spooled_settlements",
        "MLRouterNoScrapes": 'up{job="mlrouter"}',
    }
    for alert, needle in wanted.items():
        assert needle in exprs[alert], alert
