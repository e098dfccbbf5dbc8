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


def sendall_fast_install() -> None:
    """Let a plain gevent socket's `sendall` try one non-blocking `send` before gevent's general loop.

    gevent's `sendall` asks the kernel for the socket's send buffer size (a `getsockopt` per call, to
    size the pieces of a large payload), reads the clock for its timeout and goes through `send`'s
    error handling, for every write: the response to the client, the upstream request, the Redis
    command. Nearly all of them fit the send buffer, so one `send` on the OS socket (which gevent keeps
    non-blocking) finishes them; only what it did not take goes through gevent's `sendall`, which waits
    as before. Installed by the gevent worker (platform/gunicorn.conf.py); TLS sockets, whose `send`
    encrypts, and anything but `bytes` keep gevent's own.
    """
    if not COOPERATIVE:
        return
    from gevent._socket3 import socket as green_socket

    original = green_socket.sendall
    if getattr(original, "fast", False):
        return

    def sendall(self: Any, data: Any, flags: int = 0) -> None:
        if type(self) is not green_socket or type(data) is not bytes:
            return original(self, data, flags)
        try:
            sent = self._sock.send(data, flags)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            return original(self, memoryview(data)[sent:], flags)
        return None

    sendall.fast = True  # type: ignore[attr-defined]
    green_socket.sendall = sendall
