"""gunicorn settings for production: gevent workers, one per core (override with --bind/--workers).

The gevent worker monkey-patches the standard library before the app is imported (no preload), so
the views, requests/urllib3, psycopg 3 and redis-py all become cooperative: one worker relays
thousands of concurrent streams.
"""

import multiprocessing
import os

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


def on_starting(server):
    """Tell the workers how many of them there are (unless WEB_CONCURRENCY says): while Redis is unreachable,
    each allows a key its share of the rate limit (completions/ratelimit.py)."""
    os.environ.setdefault("WEB_CONCURRENCY", str(server.cfg.workers))


def worker_exit(server, worker):
    """Let the charges of answers already sent commit before the worker goes (core/after_response.py)."""
    from core.after_response import wait_all

    left = wait_all(timeout=graceful_timeout)
    if left:
        worker.log.error("%d charges were still being written at exit; reconciliation will resolve their holds", left)


def post_worker_init(worker):
    """Replay settlements a stopped worker spooled, then move everything loaded so far out of the collector's way.

    The settlement spool (completions/spool.py) keeps charges PostgreSQL could not take; a new worker
    writes what its predecessor left. The collector would otherwise walk the long-lived objects (Django,
    the app) in every full collection, a pause of tens of milliseconds under load that shows in the tail
    latency.
    """
    import gc

    from completions.spool import replay_loop_start

    replay_loop_start()
    gc.freeze()
