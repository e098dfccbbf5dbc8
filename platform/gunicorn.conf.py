"""gunicorn settings for production: gevent workers, one per core (override with --bind/--workers).

The gevent worker monkey-patches the standard library before the app is imported (no preload), so
the views, requests/urllib3, psycopg 3 and redis-py all become cooperative: one worker relays
thousands of concurrent streams.
"""

import glob
import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gevent"
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "2000"))
preload_app = False
# Streams can be silent upstream for a while; keepalive comments keep the client side busy, and the
# gevent worker does not use this timeout for in-flight requests the way sync workers do.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Prometheus metrics (core/metrics.py): each worker writes its samples to files here and a scrape of any
# worker adds them up. Set before the workers import the app, which is when the client picks its mode.
_metrics_folder_ours = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _metrics_folder_ours:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlrouter-metrics-")


def on_starting(server):
    """Start the metrics from zero (files left by an earlier run would be added to this one's), and tell the
    workers how many of them there are unless WEB_CONCURRENCY says: while Redis is unreachable, each allows
    a key its share of the rate limit (completions/ratelimit.py)."""
    os.environ.setdefault("WEB_CONCURRENCY", str(server.cfg.workers))
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(os.path.join(folder, "*.db")):
        os.remove(stale)


def on_exit(server):
    """Remove the metrics folder this server made (one given in the environment is left)."""
    if _metrics_folder_ours:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def child_exit(server, worker):
    """Drop a dead worker's live gauges (its counters stay: what it served still counts)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    """Let the charges of answers already sent commit before the worker goes (core/after_response.py)."""
    from core.after_response import wait_all

    left = wait_all(timeout=graceful_timeout)
    if left:
        worker.log.error("%d charges were still being written at exit; reconciliation will resolve their holds", left)


def post_worker_init(worker):
    """Start sampling the worker's state gauges, replay settlements a stopped worker spooled, let psycopg
    wait on its sockets through gevent's loop directly (core/db.py), give plain sockets a `sendall` that
    tries one `send` first (core/green.py), and move everything loaded so far
    (Django, the app) out of the garbage collector's way.

    The settlement spool (completions/spool.py) keeps charges PostgreSQL could not take; a new worker
    writes what its predecessor left. The collector would otherwise walk the long-lived objects (Django,
    the app) in every full collection, a pause of tens of milliseconds under load that shows in the tail
    latency.
    """
    import gc

    from completions.spool import replay_loop_start
    from core.db import green_wait_install
    from core.green import sendall_fast_install
    from core.metrics import sampler_start

    green_wait_install()
    sendall_fast_install()
    sampler_start()
    replay_loop_start()
    gc.freeze()
