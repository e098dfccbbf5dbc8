"""Prometheus metrics: what the API answered and charged, and the states an operator alerts on.

Recorded at two points of a request, never scattered through it: `request_observe` where the WSGI
handler has the answer's status (mlrouter/handlers.py), and `generation_observe` where a generation is
settled (completions/settlement.py `Closing.commit`). Upstream failures are counted where the upstream
kinds note them (`upstream_error_observe`).

Under gunicorn every worker writes its samples to memory-mapped files in `PROMETHEUS_MULTIPROC_DIR`
(platform/gunicorn.conf.py sets and empties it, and marks dead workers), and a scrape of any worker
adds them all up. Two kinds of gauge are not per request:

- scrape gauges (`scrape_gauges`), computed by the scraping process when scraped, e.g. the open holds
  (billing/metrics.py): one cheap query, not a sample per process;
- state gauges (`state_feed`), a process's own state (is its Redis fallback on, how many settlements it
  has spooled): each process samples its feeders every `STATE_SECONDS` (`sampler_start`) and the
  scraping process once more at scrape; `max` or `sum` across the live processes.

Model and provider labels come from the catalog only, never from what a client sent, so their number
stays bounded.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import cache

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
# No `_created` series: the multi-process mode has none, and a scrape should read the same in both modes.
disable_created_metrics()
STATE_SECONDS = 5.0

REQUESTS = Counter(
    "mlrouter_requests_total",
    "API requests answered, by surface, served model and provider (empty before routing) and HTTP status.",
    ["surface", "model", "provider", "status"],
)
GENERATIONS = Counter(
    "mlrouter_generations_total",
    "Generations settled, by surface, model, provider and how they ended (completed, cancelled, failed).",
    ["surface", "model", "provider", "status"],
)
GENERATION_SECONDS = Histogram(
    "mlrouter_generation_duration_seconds",
    "From the request's start to its generation's end (a stream's last chunk), by surface.",
    ["surface"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TTFT_SECONDS = Histogram(
    "mlrouter_time_to_first_token_seconds",
    "From the request's start to the first generated characters of a stream, by surface.",
    ["surface"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
CHARGED_USD = Counter(
    "mlrouter_charged_usd_total",
    "USD charged to customers for generations, by surface, model and provider.",
    ["surface", "model", "provider"],
)
UPSTREAM_ERRORS = Counter(
    "mlrouter_upstream_errors_total",
    "Upstream attempts that failed, by provider and kind (unreachable, timeout, rate_limited, http_error, bad_answer).",
    ["provider", "kind"],
)

# Fed by the modules that own the state (state_feed); a gauge nobody feeds reads 0.
STATES: dict[str, tuple[str, str]] = {
    "mlrouter_redis_fallback_active": ("1 while a process serves without Redis (its local rate limiter).", "max"),
    "mlrouter_postgres_fallback_active": ("1 while a process cannot reach PostgreSQL (fails fast).", "max"),
    "mlrouter_spooled_settlements": ("Settlements written to a process's spool, waiting for PostgreSQL.", "sum"),
}
_state_gauges = {name: Gauge(name, doc, multiprocess_mode="live" + mode) for name, (doc, mode) in STATES.items()}
_feeders: dict[str, Callable[[], float]] = {}
_scrape: list[tuple[dict[str, str], Callable[[], dict[str, float]]]] = []
_sampler: threading.Thread | None = None
_NOT_ROUTED = ("", "")


def served_mark(request: object, model: str, provider: str = "") -> None:
    """Note on the request the catalog model (and provider) serving it, for its count."""
    request.metrics_served = (model, provider)  # type: ignore[attr-defined]


def served_of(request: object) -> tuple[str, str]:
    """The model and provider noted on the request; empty when it was answered before routing."""
    return getattr(request, "metrics_served", _NOT_ROUTED)


@cache
def _child(metric: Counter | Histogram, *labels: str) -> Counter | Histogram:
    # `labels()` takes a lock and builds its key on every call; the label sets are bounded, so keep them.
    return metric.labels(*labels)


def request_observe(surface: str, status: int, model: str = "", provider: str = "") -> None:
    """Count one API answer."""
    _child(REQUESTS, surface, model, provider, str(status)).inc()


def generation_observe(
    *,
    surface: str,
    model: str,
    provider: str,
    status: str,
    seconds: float,
    ttft_seconds: float | None,
    charged: Decimal,
) -> None:
    """Count one settled generation: its ending, duration, time to first token and charge."""
    _child(GENERATIONS, surface, model, provider, status).inc()
    _child(GENERATION_SECONDS, surface).observe(seconds)
    if ttft_seconds is not None:
        _child(TTFT_SECONDS, surface).observe(ttft_seconds)
    if charged:
        _child(CHARGED_USD, surface, model, provider).inc(float(charged))


def upstream_error_observe(provider: str, kind: str) -> None:
    """Count one failed upstream attempt."""
    _child(UPSTREAM_ERRORS, provider, kind).inc()


def state_feed(name: str, feeder: Callable[[], float]) -> None:
    """Let `feeder()` tell this process's value of the state gauge `name` (one of `STATES`)."""
    if name not in STATES:
        raise ValueError(f"unknown state gauge {name!r}; add it to core.metrics.STATES")
    _feeders[name] = feeder


def scrape_gauges(documentation: dict[str, str], compute: Callable[[], dict[str, float]]) -> None:
    """Export gauges that `compute()` works out when scraped, named and described by `documentation`."""
    _scrape.append((documentation, compute))


def states_sample() -> None:
    """Write every fed state of this process into its gauge."""
    for name, feeder in _feeders.items():
        try:
            _state_gauges[name].set(float(feeder()))
        except Exception:  # a broken feeder must not stop the others, nor the request that samples
            log.exception("state gauge %s could not be sampled", name)


def _sample_forever() -> None:
    while True:
        states_sample()
        time.sleep(STATE_SECONDS)


def sampler_start() -> None:
    """Sample this process's states every `STATE_SECONDS` (a daemon, green under gevent); idempotent."""
    global _sampler
    if _sampler is None:
        _sampler = threading.Thread(target=_sample_forever, name="metrics-states", daemon=True)
        _sampler.start()


class _ScrapeCollector(Collector):
    """The scrape gauges, computed now."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for documentation, compute in _scrape:
            try:
                values = compute()
            except Exception:
                log.exception("scrape gauges %s could not be computed", ", ".join(documentation))
                continue
            for name, doc in documentation.items():
                yield GaugeMetricFamily(name, doc, value=values[name])


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets (every process's samples under gunicorn) and its content type."""
    states_sample()
    if MULTIPROCESS:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Default())
    registry.register(_ScrapeCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Default(Collector):
    """This process's own metrics (the default registry: ours and the process collector)."""

    def collect(self) -> Iterable:
        return REGISTRY.collect()
