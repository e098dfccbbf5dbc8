"""What the Prometheus instrumentation costs one request (core/metrics.py), in microseconds.

A request is counted at its two points: `served_mark` (twice: routed, then served), `request_observe` in
the WSGI handler, and `generation_observe` (counter, duration and TTFT histograms, charged USD) when it
settles. Timed in the mode gunicorn runs them (memory-mapped files in PROMETHEUS_MULTIPROC_DIR, one child
process per mode so the client picks it at import) and in one process, over realistic label sets.

    .venv/bin/python bench/metrics_cost.py          # prints JSON; `make bench` runs it and tables it
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = int(os.environ.get("BENCH_METRICS_REQUESTS", "200000"))
TARGET_US = 20.0


def _measure() -> dict:
    sys.path.insert(0, str(ROOT))
    from core import metrics

    class Request:
        pass

    models = [f"vendor/model-{i}" for i in range(20)]
    providers = ["openai", "anthropic", "openrouter"]
    statuses = [(200, "completed")] * 18 + [(502, "failed"), (200, "cancelled")]
    charged = Decimal("0.0000123")

    def one(i: int) -> None:
        request = Request()
        model, provider = models[i % 20], providers[i % 3]
        status, ending = statuses[i % 20]
        metrics.served_mark(request, model)
        metrics.served_mark(request, model, provider)
        metrics.generation_observe(
            surface="chat",
            model=model,
            provider=provider,
            status=ending,
            seconds=0.42,
            ttft_seconds=0.12 if i % 2 else None,
            charged=charged,
        )
        metrics.request_observe("chat", status, *metrics.served_of(request))

    for i in range(2000):  # warm: every label set exists
        one(i)
    best = float("inf")
    for _ in range(3):
        started = time.process_time()  # CPU time: the machine may be shared
        for i in range(REQUESTS):
            one(i)
        best = min(best, time.process_time() - started)
    return {"multiprocess": metrics.MULTIPROCESS, "requests": REQUESTS, "us_per_request": best / REQUESTS * 1e6}


def measure_all() -> list[dict]:
    """One child per mode: the client's mode is fixed when it is imported."""
    results = []
    with tempfile.TemporaryDirectory(prefix="mlrouter-metrics-bench-") as folder:
        for multiprocess in (True, False):
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            if multiprocess:
                env["PROMETHEUS_MULTIPROC_DIR"] = folder
            done = subprocess.run(
                [sys.executable, __file__, "--child"], env=env, cwd=ROOT, capture_output=True, text=True, check=True
            )
            results.append(json.loads(done.stdout))
    return results


def text(results: list[dict]) -> str:
    """The lines `make bench` prints."""
    lines = [f"metrics instrumentation per request (target < {TARGET_US:.0f} µs):"]
    for r in results:
        mode = "gunicorn (multi-process files)" if r["multiprocess"] else "one process"
        lines.append(f"  {mode}: {r['us_per_request']:.1f} µs ({r['requests']:,} requests, best of 3)")
    return "\n".join(lines)


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(_measure()))
    else:
        found = measure_all()
        print(json.dumps(found, indent=2))
        print(text(found), file=sys.stderr)
