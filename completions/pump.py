"""The stream pump: the middle of every stream relayed by one green thread per process, a tick at a time.

A stream's own green thread (the response's iterator, completions/relay.py) pays, for every chunk it
relays, a wake of gevent's hub and two switches, the socket's wait, and the generator layers from the
socket to the client (`_dechunked`, the SSE split, the relay, the response's iterator, the chunked
writer). Once a stream's middle events have a learned shape (a chat chunk's `MiddleShape`, a Messages or
Responses event's `EventShape` when passed through), none of that is needed: each is the same bytes but
for its text. So once its green thread has written a piece and every reader above the provider's socket
holds nothing, the stream is handed to the pump and its green thread waits.

Every `STREAM_PUMP_TICK_MS` the pump asks one epoll (its own, not gevent's) which of its streams' provider
sockets hold bytes and, for each, in one pass with no switch: one `recv`, the HTTP chunks and their SSE
events checked and relayed through the shape (`StreamRelay.pumped_read`: counted for the bill exactly as
the green thread counts them), one chunk framed and one non-blocking `send` to the client. The events that
arrive within a tick of each other share the wake; a chunk waits at most a tick longer.

Whatever is not a middle chunk of the learned shape goes back to the stream's own green thread, unrelayed
and uncounted, which reads it next as if from the socket (`_Watchdog.pushback`): the finish chunk, usage,
`[DONE]`, a new `created` second, an error, a partial frame or event, the provider's end or a failed read.
So does a client whose socket buffer is full (the rest of the write is sent by the green thread, which
waits for it), a client gone (the send's error is raised where the green thread's own send would raise
it), a provider silent for a tick of the stream's watchdog (the green thread writes the keep-alives), and
every stream when the pump stops. Nothing reaches the client twice or out of order: the green thread
waits while the pump holds its stream, and the pump takes a stream only between two of its writes.
"""

from __future__ import annotations

import logging
import select as _select
from typing import TYPE_CHECKING, Any

from django.conf import settings

from core.green import COOPERATIVE

from .upstreams.sse import READ_SIZE

if TYPE_CHECKING:
    from .relay import StreamRelay
    from .upstreams.sse import _Watchdog

log = logging.getLogger(__name__)


class _Stream:
    """A stream the pump holds: its two sockets (the OS ones), its relay, and how it went back."""

    __slots__ = ("client", "done", "failure", "fd", "relay", "unsent", "upstream", "watchdog")

    def __init__(self, relay: StreamRelay, watchdog: _Watchdog, client: Any) -> None:
        from gevent.event import Event

        self.relay = relay
        self.watchdog = watchdog
        self.upstream = watchdog.sock._sock  # type: ignore[union-attr]  # a plain gevent socket (pumpable)
        self.client = client._sock
        self.fd = self.upstream.fileno()
        self.done = Event()
        self.unsent: memoryview | None = None  # what the client's full buffer did not take
        self.failure: BaseException | None = None  # the client's send failed: raised in its green thread


class Pump:
    """One per process, under gevent: see the module's doc."""

    def __init__(self, tick_s: float) -> None:
        from gevent.monkey import get_original

        self.tick_s = tick_s
        self.poll = get_original("select", "epoll")()
        self.streams: dict[int, _Stream] = {}
        self.runner: Any = None
        self.relayed = 0  # reads relayed whole

    def relay(self, relay: StreamRelay, watchdog: _Watchdog, client: Any) -> None:
        """Relay the stream's middle chunks from here until the pump hands it back (the caller waits)."""
        import gevent

        stream = _Stream(relay, watchdog, client)
        try:
            self.poll.register(stream.fd, _select.EPOLLIN)
        except (OSError, ValueError):  # a socket closed meanwhile: its own green thread's read tells
            return
        self.streams[stream.fd] = stream
        watchdog.pumped = lambda: self._hand_back(stream)
        if self.runner is None:
            self.runner = gevent.spawn(self._run)
        try:
            stream.done.wait()
        finally:
            watchdog.pumped = None
            if self.streams.get(stream.fd) is stream:  # the waiting thread was killed: the pump lets go
                self._let_go(stream)
        if stream.unsent is not None:
            client.sendall(stream.unsent)  # the client's buffer was full: wait until it takes the rest
        if stream.failure is not None:
            raise stream.failure

    def _run(self) -> None:
        import gevent

        try:
            while self.streams:
                gevent.sleep(self.tick_s)
                for fd, _ in self.poll.poll(0):
                    stream = self.streams.get(fd)
                    if stream is not None:
                        self._step(stream)
        finally:
            self.runner = None
            for stream in list(self.streams.values()):
                self._hand_back(stream)

    def _step(self, stream: _Stream) -> None:
        """One ready provider socket: read it, relay its middle chunks, or hand the stream back."""
        watchdog = stream.watchdog
        try:
            data = stream.upstream.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            watchdog.pushback = exc  # the green thread's next read raises it, as its own read would
            self._hand_back(stream)
            return
        watchdog.heard = True
        try:
            out = stream.relay.pumped_read(data) if data else None
        except Exception:
            log.exception("the stream pump failed on %s: back to its thread", stream.relay.started.generation_id)
            out = None
        if out is None:
            watchdog.pushback = data  # unrelayed and uncounted: the green thread reads it next (b"": the end)
            self._hand_back(stream)
            return
        self.relayed += 1
        frame = b"%X\r\n%b\r\n" % (len(out), out)
        try:
            sent = stream.client.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            stream.failure = exc
            self._hand_back(stream)
            return
        if sent < len(frame):
            stream.unsent = memoryview(frame)[sent:]
            self._hand_back(stream)

    def _hand_back(self, stream: _Stream) -> None:
        if self.streams.get(stream.fd) is stream:
            self._let_go(stream)
            stream.done.set()

    def _let_go(self, stream: _Stream) -> None:
        del self.streams[stream.fd]
        try:
            self.poll.unregister(stream.fd)
        except OSError:  # closed meanwhile: the kernel dropped it from the epoll already
            pass


_pump: Pump | None = None


def stream_pump() -> Pump | None:
    """This process's pump, or None where there is none: not under gevent, or STREAM_PUMP_TICK_MS is 0."""
    global _pump
    if _pump is None and COOPERATIVE and settings.STREAM_PUMP_TICK_MS > 0:
        _pump = Pump(settings.STREAM_PUMP_TICK_MS / 1000)
    return _pump
