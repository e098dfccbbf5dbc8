"""Whether this process is served by gevent, and how work is started beside the current request.

Under gunicorn's gevent worker the standard library is patched before the app is imported, so this
flag is settled by the time any module reads it. Elsewhere (runserver, tests, Celery) work runs in
ordinary threads or inline.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.monkey

COOPERATIVE = gevent.monkey.is_module_patched("socket")


def start_beside(target: Callable[..., Any], *args: Any, name: str = "") -> None:
    """Run `target(*args)` beside the current request: a green thread under gevent, else a daemon thread.

    It runs in a copy of the caller's context, so its log lines name the request (core/request_ids.py).
    """
    run = contextvars.copy_context().run
    if COOPERATIVE:
        gevent.spawn(run, target, *args)  # without threading.Thread's start-up handshake
    else:
        threading.Thread(target=run, args=(target, *args), name=name or None, daemon=True).start()


class TimedOut(Exception):
    """The block under `time_limit` waited longer than its limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise `TimedOut` from the block's wait once it has run `seconds`: under gevent only.

    Elsewhere the block runs unbounded (runserver, the test client's in-memory bodies). gevent's timer is
    a BaseException raised at the blocking call, so no `except Exception` (nor Django's wrapping of a
    failed body read as `UnreadablePostError`) in between can take it for an ordinary error.
    """
    if not COOPERATIVE:
        yield
        return
    timer = gevent.Timeout(seconds)
    timer.start()
    try:
        yield
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        raise TimedOut from None
    finally:
        timer.close()
