"""Work committed after an answer has been sent: started when the response is closed, waited for on exit.

The request path knows a plain answer's charge exactly before anything is sent; writing it is not a wait
the client needs to sit through. Under gevent the work runs in its own green thread once the WSGI
server closes the response, so the connection takes its next request at once; the worker waits for
what is still running before it exits (`wait_all`, from `platform/gunicorn.conf.py`), and a caller's
next read of the same account waits for that account's work (`wait_for`). Elsewhere the work runs inline.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Hashable
from typing import Any

import gevent
import gevent.pool

from .cache import ProcessCache
from .green import COOPERATIVE

_group = gevent.pool.Group() if COOPERATIVE else None
# Owner (an account id) -> its work still running in this process. Entries leave when their work ends;
# the bound only guards against a leak.
_in_flight: ProcessCache[set[gevent.Greenlet]] = ProcessCache("after-response work", max_entries=100_000)


def run_after_response(work: Callable[..., Any], *args: Any, owner: Hashable) -> None:
    """Run `work(*args)` now in its own green thread (under gevent), else inline; `owner`'s reads wait for it."""
    if _group is None:
        work(*args)
        return
    # In a copy of the caller's context, so that its log lines name the request (core/request_ids.py).
    greenlet = _group.spawn(contextvars.copy_context().run, work, *args)
    running = _in_flight.peek(owner)
    if running is None:
        running = set()
        _in_flight.put(owner, running)
    running.add(greenlet)
    greenlet.link(lambda done: _forget(owner, done))


def _forget(owner: Hashable, greenlet: gevent.Greenlet) -> None:
    running = _in_flight.peek(owner)
    if running is not None:
        running.discard(greenlet)
        if not running:
            _in_flight.pop(owner)


def wait_for(owner: Hashable, timeout: float = 5.0) -> None:
    """Wait for `owner`'s work still running in this process (its next read then sees what was written)."""
    running = _in_flight.peek(owner)
    if running:
        gevent.joinall(list(running), timeout=timeout)


def wait_all(timeout: float) -> int:
    """Wait for all the work still running (a stopping worker calls this); return how much did not finish."""
    if _group is None:
        return 0
    _group.join(timeout=timeout)
    return len(_group)
