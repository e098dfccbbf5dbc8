"""Relaying the upstream's answer to the client: plain JSON, or a server-sent event stream.

The transport is here; the wire formats are not: the upstream kind (completions/upstreams/) reads the
provider's answer, and the request's surface (completions/surfaces/) writes it for the client.

A stream is read from the provider by the response's own iterator, in the green thread that writes to
the client: one thread per stream, no hand-off between threads. Each read waits at most the keep-alive
interval (the socket's timeout, completions/upstreams/sse.py); a silence comes back as an empty batch and
the client gets a keep-alive. However the provider's part ends — completed, upstream failure — the
iterator settles the generation exactly once, then writes the stream's last events (the surface's, with
the `cost`) and `[DONE]`. A client gone mid-stream closes the iterator: a green thread then reads the
provider on for up to STREAM_DRAIN_SECONDS (its usage settles the charge) and settles. Every chunk is
relayed as it arrives but the one that finishes the answer (it carries a `finish_reason`): that one is
held back until the stream is settled, so that the surface may write the cost on it (see `StreamEnd`).
While relaying, no database connection is held. Under gevent, the middle chunks of a stream are
relayed by the process's stream pump while its green thread waits (completions/pump.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from urllib3.exceptions import HTTPError, TimeoutError

from core import fastjson
from core.after_response import run_after_response, wait_for
from core.db import release_db
from core.green import COOPERATIVE, start_beside

from .chat_chunks import MiddleShape, middle_chunk_chars
from .errors import ApiError
from .models import Generation
from .pump import stream_pump
from .settlement import Closing, Finished, Outcome, Started, generation_close
from .spool import commit_or_spool
from .surfaces.base import ChunkRewriter, StreamEnd
from .upstreams import UpstreamCall
from .upstreams.base import NativeStream

log = logging.getLogger(__name__)

MAX_PLAIN_BYTES = 64 * 1024 * 1024
# Middle-chunk shapes learned in a row without one being of use before the relay stops learning: a provider
# that writes something new in every chunk (a per-chunk nonce, say) costs one extra rewrite a chunk until then.
_SHAPE_LEARNS = 4


def response_headers(response: HttpResponse, started: Started, headers: dict[str, str]) -> None:
    response["X-Generation-Id"] = started.generation_id
    # The request was charged: a client retry would be charged again.
    response["x-should-retry"] = "false"
    for name, value in headers.items():
        response[name] = value


def relay_plain(started: Started, call: UpstreamCall, headers: dict[str, str]) -> HttpResponse:
    """Read the upstream's JSON answer, settle, and return it with our id, model and cost."""
    try:
        raw = call.response.read(MAX_PLAIN_BYTES + 1)
        call.response.release_conn()
        body = fastjson.loads(raw) if len(raw) <= MAX_PLAIN_BYTES else None
    except (HTTPError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep to read
        body, raw = None, b""
        timed_out = isinstance(exc, TimeoutError)
    else:
        timed_out = False
    upstream = call.upstream
    if not isinstance(body, dict) or not upstream.answer_ok(body):
        raise _not_settled(started, call, timed_out)
    if call.passthrough is not None:
        return _relay_native(started, call, body, headers)
    body = upstream.plain(body)
    choices = body.get("choices")  # none in an embedding list: nothing generated, no finish reason
    first = choices[0] if choices and isinstance(choices, list) and isinstance(choices[0], dict) else {}
    try:
        closing = generation_close(
            started=started,
            outcome=Outcome(
                Generation.Status.COMPLETED,
                route=call.route,
                usage=body.get("usage"),
                completion_chars=upstream.completion_chars(choices, "message"),
                finish_reason=str(first.get("finish_reason") or ""),
                upstream_id=str(body.get("id") or ""),
            ),
        )
        content = started.surface.plain_answer(body, started, closing.finished)
    except RecursionError:
        # Read, but nested too deep to be written back: as unusable as a body that could not be read.
        raise _not_settled(started, call, timed_out=False)
    response = SettledWhenSent(closing, content, content_type="application/json")
    response_headers(response, started, headers)
    return response


def _not_settled(started: Started, call: UpstreamCall, timed_out: bool) -> ApiError:
    """Record a plain answer that cannot be relayed as failed (its hold released) and say so: 502 or 504."""
    why = "timed out" if timed_out else "sent an invalid response"
    outcome = Outcome(Generation.Status.FAILED, route=call.route, error=f"upstream {why}", charge=False)
    commit_or_spool(generation_close(started=started, outcome=outcome))
    return ApiError(
        504 if timed_out else 502,
        f"The upstream provider {why}. You were not charged; retrying may help.",
        code="upstream_timeout" if timed_out else "upstream_error",
    )


def _relay_native(started: Started, call: UpstreamCall, body: dict, headers: dict[str, str]) -> HttpResponse:
    """A plain answer in the surface's own API: settled from what it reports, handed on with our cost."""
    native = call.passthrough
    assert native is not None
    try:
        read = native.read(body)
        closing = generation_close(
            started=started,
            outcome=Outcome(
                Generation.Status.COMPLETED,
                route=call.route,
                usage=read.usage,
                completion_chars=read.completion_chars,
                finish_reason=read.finish_reason,
                upstream_id=read.upstream_id,
            ),
        )
        content = native.answer(body, started, closing.finished)
    except RecursionError:
        # Read, but nested too deep to be written back, as on a translated route: 502, nothing charged.
        raise _not_settled(started, call, timed_out=False)
    response = SettledWhenSent(closing, content, content_type="application/json")
    response_headers(response, started, headers)
    return response


class SettledWhenSent(HttpResponse):
    """A plain answer whose charge is written once the answer has been sent.

    The charge is known exactly before anything is sent (`Closing.finished`); committing it is not a
    wait the client sits through. The WSGI server calls `close()` once the body is written (the test
    client does too), which hands the commit to `core.after_response`. Should the process die in
    between, the hold stays open and reconciliation releases it: the request goes uncharged, never
    charged twice.
    """

    def __init__(self, closing: Closing, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closing: Closing | None = closing

    def close(self) -> None:
        closing, self.closing = self.closing, None
        if closing is not None:
            run_after_response(_commit, closing, owner=closing.started.principal.account_id)
        super().close()


def _commit(closing: Closing) -> None:
    started = closing.started
    try:
        finished = commit_or_spool(closing)
        if started.surface.settled is not None:
            try:
                started.surface.settled(started, finished)
            except Exception:  # what the surface does after the charge never undoes it
                log.exception("after settling %s, the %s surface failed", started.generation_id, started.surface.name)
    except Exception:
        log.exception("settling %s failed; reconciliation will resolve its hold", started.generation_id)
    finally:
        if COOPERATIVE:
            release_db()  # this green thread's own connection, if the commit opened one


def settlements_wait_for(account_id: int, timeout: float = 5.0) -> None:
    """Wait for this process's commits of the account's answers already sent.

    A client's next request on the same connection comes to the same process: reading its generation
    or balance right after an answer then sees the charge.
    """
    wait_for(account_id, timeout=timeout)


class StreamRelay:
    """One streamed generation, read from the provider by the response's own iterator (see the module's doc)."""

    def __init__(self, started: Started, call: UpstreamCall, headers: dict[str, str]) -> None:
        self.started = started
        self.call = call
        self.headers = headers
        self.client_gone_at: float | None = None
        self.reading = True  # until the provider's part is over: finished, failed, or given up
        self.settled = False
        self.outcome = Outcome(Generation.Status.FAILED, route=call.route)
        self.done = False
        self.usage: Any = None
        self.usage_chunk: dict | None = None
        self.held: tuple[bytes, dict] | None = None
        self.rewrite: ChunkRewriter | None = None
        # The fast path: a middle chunk is read and rewritten as bytes (completions/chat_chunks.py).
        self.rewrite_bytes: Callable[[bytes], bytes | None] | None = None
        # Faster still: a middle chunk with the bytes of the last one around its text, relayed as a slice.
        self.shape: MiddleShape | None = None
        self.shape_learns = 0  # shapes learned since one was last of use: a stream whose chunks all differ stops
        self.error: str = ""
        self.finished: Finished | None = None
        self.created = int(time.time())
        # A stream in the surface's own API (a native route): relayed event by event, its end written with our cost.
        self.native: NativeStream | None = call.passthrough.stream(started) if call.passthrough else None
        # Each read waits at most the keep-alive interval: an empty batch is a silence (completions/upstreams/sse.py).
        quiet_s = settings.STREAM_KEEPALIVE_SECONDS
        if call.passthrough is not None:
            self.batches: Iterator[list[bytes]] = call.passthrough.events(call.response, quiet_s)
            self.take: Callable[[list[bytes]], bytes] = self._take_native
        else:
            upstream = call.upstream
            self.batches = (upstream.event_batches or _one_by_one(upstream.events))(call.response, quiet_s)
            self.take = self._take_chunks
        # Whether the process's stream pump may relay the middle chunks (completions/pump.py).
        pumped = call.passthrough.pumped if call.passthrough is not None else call.upstream.pumped
        self.pump = stream_pump() if pumped else None

    def response(self) -> StreamingHttpResponse:
        try:
            response = StreamingHttpResponse(_Relayed(self), content_type="text/event-stream")
            if self.pump is not None:
                response.after_write = self.pumped  # the chunked writer's call after each piece (mlrouter/handlers.py)
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            response_headers(response, self.started, self.headers)
        except BaseException:
            # No response will carry the stream: it is read to its end and settled all the same, beside.
            start_beside(_run_out, self.events(), name=f"relay-{self.started.generation_id}")
            raise
        return response

    def events(self) -> Iterator[bytes]:
        """The client's stream: each read's events in one write, keep-alives while the provider is silent, and
        once it is over and settled, the surface's last events with the cost."""
        finished_normally = False
        try:
            while self.reading:
                out = self._read_some()
                if out:
                    yield out
            self._end()
            yield from self._last_events()
            finished_normally = True
        finally:
            if not finished_normally:
                self.client_left()

    def _read_some(self) -> bytes:
        """What the client gets of the provider's next read: its events (maybe none), or a keep-alive after a
        silence. `reading` turns False once the provider's part is over (then `_end`)."""
        try:
            batch = next(self.batches, None)
            if batch is None:
                self._upstream_closed()
            elif not batch:
                return self.started.surface.stream_keepalive if self.client_gone_at is None else b""
            else:
                return self.take(batch)
        except TimeoutError:
            self.error = "the upstream stopped sending (read timeout)"
        except HTTPError:
            self.error = "the upstream connection dropped mid-stream"
        except RecursionError:
            # An event nested deeper than JSON can be read or written back: the stream cannot go on.
            self.error = "the upstream sent an invalid event"
        except Exception:
            # Whatever went wrong, the stream is still settled below and ends with an error event.
            log.exception("relaying %s failed", self.started.generation_id)
            self.error = "internal error while relaying"
        self.reading = False
        return b""

    def _take_chunks(self, batch: list[bytes]) -> bytes:
        """One read's chat chunks: counted for settlement, rewritten for the client; `reading` False at the end."""
        outcome = self.outcome
        surface = self.started.surface
        rewrite_bytes = self.rewrite_bytes
        out: list[bytes] = []  # what this read relays: one write for the events that arrived together
        shape = self.shape
        for data in batch:
            if shape is not None and not outcome.finish_reason:
                fast = shape.relay(data)
                if fast is not None:
                    event, chars = fast
                    if chars:
                        if outcome.ttft_ms is None:
                            outcome.ttft_ms = int((time.monotonic() - self.started.clock) * 1000)
                        outcome.completion_chars += chars
                    out.append(event)
                    self.shape_learns = 0
                    continue
            if rewrite_bytes is not None and not outcome.finish_reason:
                chars = middle_chunk_chars(data)
                relayed = None if chars is None else rewrite_bytes(data)
                if relayed is not None:
                    event = surface.stream_event(relayed)
                    if chars:
                        if outcome.ttft_ms is None:
                            outcome.ttft_ms = int((time.monotonic() - self.started.clock) * 1000)
                        outcome.completion_chars += chars
                        if self.shape_learns < _SHAPE_LEARNS:
                            shape = self._learn_shape(data, event) or shape
                    out.append(event)
                    continue
            if data == b"[DONE]":
                self.done, self.reading = True, False
                break
            chunk = _json_object(data)
            if chunk is None:
                continue
            if "error" in chunk and not chunk.get("choices"):
                self.error = "the upstream reported an error mid-stream"
                self.reading = False
                break
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            choices = chunk.get("choices")
            if not choices:
                if self.usage is not None:
                    self.usage_chunk = chunk
                continue
            if not outcome.upstream_id:
                outcome.upstream_id = str(chunk.get("id") or "")
                self.rewrite = surface.stream_rewriter(chunk, self.started)
                rewrite_bytes = self.rewrite_bytes = getattr(self.rewrite, "apply_bytes", None)
            rewrite = self.rewrite
            assert rewrite is not None
            chars = self.call.upstream.completion_chars(choices, "delta")
            if chars and outcome.ttft_ms is None:
                outcome.ttft_ms = int((time.monotonic() - self.started.clock) * 1000)
            outcome.completion_chars += chars
            reason = choices[0].get("finish_reason") if isinstance(choices[0], dict) else None
            if reason:
                outcome.finish_reason = str(reason)
            if self.held is not None:
                out.append(surface.stream_event(rewrite.apply(*self.held)))
                self.held = None
            if outcome.finish_reason:
                # The answer's end waits for its usage and cost: the surface writes it (stream_final).
                self.held = (data, chunk)
            else:
                out.append(surface.stream_event(rewrite.apply(data, chunk)))
        return b"".join(out)

    def pumped(self, client: Any) -> None:
        """After a piece was written to `client`: when the stream is in its middle, with a learned shape and
        nothing read but not relayed, the pump relays it from here until it hands it back (this waits)."""
        pump, native = self.pump, self.native
        if pump is None:
            return
        if native is not None:
            in_middle = native.in_middle()
        else:  # a shape learned anew is of use once here first
            in_middle = self.shape is not None and not self.shape_learns and self.held is None
        watchdog = getattr(self.call.response, "stream_watchdog", None)
        if (
            not in_middle
            or not self.reading
            or self.outcome.finish_reason
            or self.client_gone_at is not None
            or watchdog is None
            or not watchdog.direct
            or not watchdog.clean
            or watchdog.pushback is not None
            or watchdog.sock is None
        ):
            return
        pump.relay(self, watchdog, client)

    def pumped_read(self, data: bytes) -> bytes | None:
        """What the client gets for one read of the provider's socket when all of it is whole HTTP chunks of
        middle events of the learned shape, counted as `_take_chunks` (a chat chunk, `data: <chunk>` alone in its
        event) or `_take_native` (a native stream's frame) counts them; None (nothing counted) for anything else."""
        shape, native = self.shape, self.native
        out: list[bytes] = []
        chars = 0
        at, end = 0, len(data)
        while at < end:
            line_end = data.find(b"\r\n", at, at + 10)
            if line_end <= at:
                return None
            try:
                size = int(data[at:line_end], 16)
            except ValueError:
                return None
            start = line_end + 2
            stop = start + size
            if size <= 0 or stop + 2 > end or data[stop : stop + 2] != b"\r\n":
                return None
            if data[stop - 2 : stop] != b"\n\n" or b"\r" in data[start:stop]:
                return None
            for event in data[start : stop - 2].split(b"\n\n"):
                if native is not None:
                    fast = native.fast(event) if event else None  # a frame as `frame_batches` splits them
                elif event.startswith(b"data: ") and b"\n" not in event:
                    assert shape is not None
                    fast = shape.relay(event[6:])
                else:
                    fast = None
                if fast is None:
                    return None
                out.append(fast[0])
                chars += fast[1]
            at = stop + 2
        if chars:
            outcome = self.outcome
            if outcome.ttft_ms is None:
                outcome.ttft_ms = int((time.monotonic() - self.started.clock) * 1000)
            outcome.completion_chars += chars
        return b"".join(out)

    def _learn_shape(self, data: bytes, event: bytes) -> MiddleShape | None:
        """Learn the stream's middle chunks' bytes from one written the long way (completions/chat_chunks.py)."""
        rewrite_bytes, stream_event = self.rewrite_bytes, self.started.surface.stream_event
        assert rewrite_bytes is not None

        def write(chunk: bytes) -> bytes | None:
            relayed = rewrite_bytes(chunk)
            return None if relayed is None else stream_event(relayed)

        self.shape_learns += 1
        self.shape = MiddleShape.learn(data, event, write) or self.shape
        return self.shape

    def _take_native(self, batch: list[bytes]) -> bytes:
        """One read's native events: every event relayed as it comes but the answer's end (held for the cost)."""
        native = self.native
        assert native is not None
        outcome = self.outcome
        out: list[bytes] = []
        for event in batch:
            relayed, chars = native.feed(event)
            if chars and outcome.ttft_ms is None:
                outcome.ttft_ms = int((time.monotonic() - self.started.clock) * 1000)
            outcome.completion_chars += chars
            if relayed:
                out.append(relayed)
            if native.error:
                self.error = native.error
                self.reading = False
                break
            if native.done:
                self.done, self.reading = True, False
                break
        return b"".join(out)

    def _upstream_closed(self) -> None:
        """The connection closed without the stream's end: complete only if the answer had finished."""
        self.reading = False
        if self.native is not None:
            self.done = False
        else:
            self.done = bool(self.outcome.finish_reason)
        if not self.done and not self.error:
            self.error = "the upstream connection dropped mid-stream"

    def _end(self) -> None:
        """The provider's part is over: its connection back to the pool (or closed), the generation settled."""
        self.reading = False
        if self.settled:
            return
        outcome = self.outcome
        if self.native is not None:
            native = self.native
            self.usage = native.usage
            outcome.upstream_id, outcome.finish_reason = native.upstream_id, native.finish_reason
            self.done = self.done and native.done and not self.error
        if self.done:
            # Read the rest (the chunked terminator) so the pooled connection is clean for reuse.
            _read_to_end(self.batches)
            self.call.response.drain_conn()
            self.call.response.release_conn()
        else:
            self.call.response.close()
            self.batches.close()  # its reader's timer too (completions/upstreams/sse.py)
        self._settle(outcome, self.done)

    def _settle(self, outcome: Outcome, done: bool) -> None:
        if self.settled:
            return
        self.settled = True
        outcome.usage = self.usage
        if self.client_gone_at is not None and not done:
            outcome.status, outcome.error = Generation.Status.CANCELLED, "client disconnected; upstream abandoned"
        elif self.client_gone_at is not None:
            outcome.status, outcome.error = Generation.Status.CANCELLED, "client disconnected"
        elif done:
            outcome.status = Generation.Status.COMPLETED
        else:
            outcome.status, outcome.error = Generation.Status.FAILED, self.error
            # Nothing generated, nothing to charge.
            outcome.charge = outcome.completion_chars > 0 or self.usage is not None
        try:
            # PostgreSQL unreachable: the charge is spooled, and the client still learns what it costs.
            self.finished = commit_or_spool(generation_close(started=self.started, outcome=outcome))
        except Exception:
            log.exception("settling %s failed; reconciliation will settle its hold", self.started.generation_id)
            self.error = self.error or "internal error while settling"
        finally:
            release_db()

    def _last_events(self) -> Iterator[bytes]:
        surface = self.started.surface
        if self.native is not None:
            final = self.native.final(self.finished, self.error)
        else:
            last, last_chunk = self.held or (None, None)
            end = StreamEnd(
                last,
                last_chunk,
                self.rewrite,
                self.usage_chunk,
                self.usage,
                self.finished,
                self.created,
                self.error,
            )
            final = surface.stream_final(self.started, end)
        if final:
            yield final
        if self.error:
            yield surface.stream_error(self.error)
        yield surface.stream_end

    def client_left(self) -> None:
        """The client is gone before the stream's end: a green thread reads the provider on (for the usage,
        up to STREAM_DRAIN_SECONDS) and settles; a provider gone quiet is cut off when that time is up."""
        if self.client_gone_at is not None:
            return
        self.client_gone_at = time.monotonic()
        if not self.reading:
            return  # already settled
        timer = threading.Timer(_drain_s(), self._stop_draining)
        timer.daemon = True
        timer.start()
        start_beside(self._drain, name=f"relay-{self.started.generation_id}")

    def _drain(self) -> None:
        while self.reading:
            self._read_some()
            if time.monotonic() - (self.client_gone_at or 0) > _drain_s():
                break
        self._end()

    def _stop_draining(self) -> None:
        """Unblock a drain still waiting on the upstream when the drain time is up."""
        if self.reading:
            self.call.response.shutdown()


class _Relayed:
    """The streaming response's content: the relay's events, and a `close()` the server calls when it is done
    with the response, also when it never started to iterate (the client gone before the headers)."""

    def __init__(self, relay: StreamRelay) -> None:
        self.relay = relay
        self.events = relay.events()

    def __iter__(self) -> Iterator[bytes]:
        return self.events

    def close(self) -> None:
        self.events.close()  # the iterator's own end: a client gone mid-stream is seen there
        if self.relay.reading:
            self.relay.client_left()


def _run_out(events: Iterator[bytes]) -> None:
    for _ in events:
        pass


def _json_object(data: bytes) -> dict | None:
    try:
        chunk = fastjson.loads(data)
    except ValueError:
        return None
    return chunk if isinstance(chunk, dict) else None


def _read_to_end(events: Iterator[Any]) -> None:
    """Read what is left of a finished stream (the chunked terminator) with the reader that read the rest: it
    may hold part of it (completions/upstreams/sse.py), so urllib3's own drain would wait for bytes already read."""
    try:
        for _ in events:
            pass
    except HTTPError:
        pass


def _one_by_one(events: Callable[[Any, float], Iterator[bytes]]) -> Callable[[Any, float], Iterator[list[bytes]]]:
    """An upstream kind's events as batches of one (a silence, b"", as an empty batch), for a kind that reads no
    more than an event at a time."""
    return lambda response, quiet_s: ([event] if event else [] for event in events(response, quiet_s))


def _drain_s() -> float:
    return settings.STREAM_DRAIN_SECONDS


def relay_stream(started: Started, call: UpstreamCall, headers: dict[str, str]) -> StreamingHttpResponse:
    """Start relaying a stream; the response's iterator yields events as the upstream sends them."""
    return StreamRelay(started, call, headers).response()
