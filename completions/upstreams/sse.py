"""Reading a provider's event stream: one network read at a time, its HTTP chunk framing removed here.

This is the relay's read side, the one speed trick of the upstream kinds (ARCHITECTURE.md, "A stream is
relayed as bytes"). urllib3's `read_chunked` costs a generator step, a `readline` and two `_safe_read`s
per HTTP chunk inside an error-catching context manager, and providers send one chunk per event. Here
`body_pieces` takes whatever the socket holds (up to 64 KiB, one `read1`) and strips the framing with
bytes operations, so events that arrive together cost one pass. Errors are urllib3's, as its own
reader raises them: a read timeout is `ReadTimeoutError`, a connection gone or a framing it cannot read
is `ProtocolError`. Once the last chunk is read, the response is closed the way http.client closes a
finished one, so the connection goes back to the pool for the next call.

A relay that asks for it (`quiet_s`) gets an empty piece each time the provider has been silent that long,
so that the response iterator reading the provider itself can write its keep-alive and read on. The read
timeout still counts from the provider's last byte, so a silent provider fails as before
(`ReadTimeoutError`) once its read timeout is up. Under gevent one timer per stream does it
(`_Watchdog`): the socket waits without a timeout (gevent's socket would arm a timer for every wait), and
the timer, ticking a few times per interval, interrupts a read only when the provider has been silent.
Elsewhere (threads) the socket's own timeout does it (`_Silence`).

A response this cannot read raw (compressed, not chunked, or not over http.client) is read through
urllib3 as before, without quiet pieces: urllib3 closes the connection on a timeout.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import urllib3
from greenlet import getcurrent
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from core import fastjson
from core.green import COOPERATIVE

READ_SIZE = 65536
_CRLF = b"\r\n"


def body_pieces(response: urllib3.BaseHTTPResponse, quiet_s: float | None = None) -> Iterator[bytes]:
    """The response body as it arrives: one piece per network read, without HTTP's chunk framing.

    With `quiet_s`, also an empty piece each time the provider has been silent for `quiet_s` seconds.
    """
    original = getattr(response, "_original_response", None)
    reader = getattr(original, "fp", None)
    if response.chunked and reader is not None and not response.headers.get("content-encoding"):
        raw = getattr(reader, "raw", None)
        quiet: _Silence | _Watchdog | None = None
        if quiet_s and isinstance(raw, socket.SocketIO):
            quiet = _Watchdog(raw, quiet_s) if COOPERATIVE else _Silence(raw, quiet_s)
            response.stream_watchdog = quiet  # the stream pump's way to the socket (completions/pump.py)
        try:
            yield from _dechunked(original, reader, quiet)
        finally:
            if quiet is not None:
                quiet.close()
    elif response.chunked and response.supports_chunked_reads():
        yield from response.read_chunked(decode_content=True)
    else:
        yield from iter(lambda: response.read1(READ_SIZE), b"")


class _Silence:
    """How long the provider has been silent, told by the socket's timeouts: the keep-alive interval each."""

    clean = False  # see _Watchdog

    def __init__(self, raw: socket.SocketIO, quiet_s: float) -> None:
        self.raw = raw
        self.sock = raw._sock  # what the reader reads from: its timeout is the one a read waits
        self.limit = self.sock.gettimeout()  # the read timeout the upstream call set
        self.quiet_s = quiet_s
        self.silent = 0.0
        self.sock.settimeout(self._wait_s())

    def _wait_s(self) -> float:
        return self.quiet_s if self.limit is None else min(self.quiet_s, self.limit - self.silent)

    def read(self, reader) -> bytes | None:
        """One network read, or None when the provider was silent for the quiet interval."""
        try:
            data = reader.read1(READ_SIZE)
        except TimeoutError:
            self.silent += self.sock.gettimeout()
            if self.limit is not None and self.silent >= self.limit:
                raise
            # A read that timed out received nothing: the socket reader may read on (it refuses to by default).
            self.raw._timeout_occurred = False
            self.sock.settimeout(self._wait_s())
            return None
        if self.silent:  # the provider spoke after a silence: its read timeout counts afresh
            self.silent = 0.0
            self.sock.settimeout(self._wait_s())
        return data

    def close(self) -> None:
        pass


def _green_socket() -> type:
    from gevent.socket import socket as green_socket

    return green_socket


class _Quiet(BaseException):
    """Thrown by the watchdog into a read waiting on a silent provider (not an error: no one else catches it)."""


class _Deadline(BaseException):
    """Thrown by the watchdog into a read waiting longer than the read timeout."""


class _Watchdog:
    """One gevent timer per stream, ticking a few times per keep-alive interval; the socket has no timeout.

    A read marks the stream heard; a tick that finds it unheard counts the silence, and interrupts the
    read waiting then with `_Quiet` once per keep-alive interval, or `_Deadline` once the read timeout is up.

    It is also what the stream pump (completions/pump.py) reads the socket through while it relays the
    stream's middle: `clean` tells that the readers above the socket hold no part of an event, the pump
    marks the stream heard, a tick that finds the pumped stream silent hands it back (`pumped`), and the
    pump hands back what it read but could not relay (`pushback`: the next read returns it, or raises it).
    """

    def __init__(self, raw: socket.SocketIO, quiet_s: float) -> None:
        from gevent import get_hub

        sock = raw._sock
        self.limit = sock.gettimeout()  # the read timeout the upstream call set
        sock.settimeout(None)
        self.quiet_s = quiet_s
        self.tick_s = min(quiet_s, self.limit or quiet_s) / 4
        self.heard = False
        self.silent = 0.0  # silence counted by the ticks
        self.pinged = 0.0  # the silence at the last `_Quiet`
        self.waiting = None  # the green thread waiting in a read, if one is
        self.timer = get_hub().loop.timer(self.tick_s, self.tick_s, ref=False)
        self.timer.start(self._tick)
        # The socket read directly once the reader's buffer is empty: a plain gevent socket only (TLS decrypts).
        self.sock = sock if type(sock) is _green_socket() else None
        self.direct = False
        self.clean = False  # whether the last read ended where an event does: `_dechunked` and the split say
        self.pushback: bytes | BaseException | None = None
        self.pumped: Callable[[], None] | None = None  # while the pump relays the stream: its hand-back

    def read(self, reader) -> bytes | None:
        """One network read, or None when the provider was silent for the quiet interval."""
        pushback = self.pushback
        if pushback is not None:  # read by the pump, which could not relay it
            self.pushback = None
            if isinstance(pushback, BaseException):
                raise pushback
            return pushback
        self.waiting = getcurrent()
        try:
            if self.direct:
                data = self._recv()
            else:
                # The reader's buffer (what http.client read past the headers; at most its 8 KiB, less than
                # READ_SIZE) comes back whole from one `read1`: after it, the socket alone holds the rest.
                data = reader.read1(READ_SIZE)
                self.direct = self.sock is not None
        except _Quiet:
            return None
        except _Deadline:
            raise TimeoutError from None
        finally:
            self.waiting = None
        self.heard = True
        return data

    def _recv(self) -> bytes:
        """Wait on the socket's own read watcher, then take what it holds: the events a relay reads arrive apart,
        so the socket is empty when asked again, and a `recv` first would only fail."""
        sock = self.sock
        while True:
            sock._wait(sock._read_event)  # gevent's wait: a socket closed meanwhile raises here
            try:
                return sock._sock.recv(READ_SIZE)
            except BlockingIOError:  # woken with nothing to read after all
                continue

    def _tick(self) -> None:
        if self.heard:
            self.heard = False
            self.silent = self.pinged = 0.0
            return
        self.silent += self.tick_s
        waiting = self.waiting
        if waiting is None:
            if self.pumped is not None:
                self.pumped()  # silent under the pump: back to its own green thread, which keeps the client alive
            return  # not reading (writing to the client, say): nothing to interrupt
        if self.limit is not None and self.silent >= self.limit:
            waiting.throw(_Deadline())
        elif self.silent - self.pinged >= self.quiet_s:
            self.pinged = self.silent
            waiting.throw(_Quiet())

    def close(self) -> None:
        self.timer.stop()
        self.timer.close()


def _read(reader, quiet: _Silence | _Watchdog | None = None) -> bytes | None:
    """One network read: its bytes, or None when the provider was silent for the quiet interval."""
    try:
        data = reader.read1(READ_SIZE) if quiet is None else quiet.read(reader)
    except TimeoutError:
        raise ReadTimeoutError(None, None, "Read timed out.") from None
    except (OSError, ValueError) as exc:  # ValueError: the reader was closed under us (shutdown, close)
        raise ProtocolError("Connection broken while reading the stream", exc) from exc
    if data is None:
        return None
    if not data:
        raise ProtocolError("Response ended prematurely")
    return data


def _dechunked(original, reader, quiet: _Silence | _Watchdog | None) -> Iterator[bytes]:
    pending = b""  # a chunk-size line (or the CRLF after a chunk) cut by the end of a read
    left = 0  # bytes of the current chunk still to come
    skip = 0  # bytes of the CRLF after the current chunk still to skip
    while True:
        data = _read(reader, quiet)
        if data is None:  # silent for the quiet interval
            if quiet is not None:  # a read since the last yield may have left part of a chunk here
                quiet.clean = not (pending or left or skip)
            yield b""
            continue
        if pending:
            data, pending = pending + data, b""
        elif not left and not skip:
            # The usual read: exactly one whole HTTP chunk (one event), "<size>\r\n<data>\r\n".
            line_end = data.find(_CRLF, 0, 10)
            if line_end > 0 and data.endswith(_CRLF):
                try:
                    size = int(data[:line_end], 16)
                except ValueError:
                    size = -1
                if size > 0 and line_end + size + 4 == len(data):
                    if quiet is not None:
                        quiet.clean = True
                    yield data[line_end + 2 : -2]
                    continue
        out = []
        at, end = 0, len(data)
        while at < end:
            if left:
                take = min(left, end - at)
                out.append(data if take == end else data[at : at + take])
                at += take
                left -= take
                skip = 0 if left else 2
                continue
            if skip:
                if end - at < skip:  # half a CRLF: the rest comes with the next read
                    pending = data[at:]
                    break
                if data[at : at + skip] != _CRLF[2 - skip :]:
                    raise ProtocolError("Invalid chunk framing in the stream")
                at += skip
                skip = 0
                continue
            line_end = data.find(_CRLF, at)
            if line_end < 0:
                pending = data[at:]
                if len(pending) > 1024:
                    raise ProtocolError("Invalid chunk length in the stream")
                break
            try:
                size = int(data[at:line_end].split(b";", 1)[0], 16)
            except ValueError:
                raise ProtocolError("Invalid chunk length in the stream") from None
            at = line_end + 2
            if size == 0:
                # Finished before the last yield: a reader that stops at the answer's last event (`[DONE]`)
                # leaves nothing of the response unread.
                _finish(original, reader, data[at:], quiet)
                if out:
                    yield b"".join(out)
                return
            left = size
        if out:
            if quiet is not None:
                quiet.clean = not (pending or left or skip)
            yield out[0] if len(out) == 1 else b"".join(out)


def _finish(original, reader, rest: bytes, quiet: _Silence | _Watchdog | None) -> None:
    """Read the trailer section after the last chunk (an empty line, usually), then close as http.client does."""
    while not (rest.startswith(_CRLF) or b"\r\n\r\n" in rest):
        rest += _read(reader, quiet) or b""
    # http.client's own end of a chunked body: the socket stays open, the connection can serve the next call.
    original._close_conn()


def holds_part(response: urllib3.BaseHTTPResponse) -> None:
    """A reader above the socket holds part of an event: the stream pump must not read the socket under it."""
    watchdog = getattr(response, "stream_watchdog", None)
    if watchdog is not None:
        watchdog.clean = False


def frame_batches(response: urllib3.BaseHTTPResponse, quiet_s: float | None = None) -> Iterator[list[bytes]]:
    """The whole SSE frames (`event:` and `data:` lines) of a stream, for the kinds whose events are typed
    (`event:` and a JSON `data:`): Anthropic's Messages and OpenAI's Responses streams; a list per network
    read, of the frames it completed (relayed in one write, as chat's `sse_batches` are); an empty list each
    time the provider was silent for `quiet_s` seconds."""
    buffer = b""
    for piece in body_pieces(response, quiet_s):
        if not piece:
            if buffer:
                holds_part(response)
            yield []
            continue
        buffer = buffer + piece if buffer else piece
        if b"\r" in buffer:  # on the whole buffer: a read may end between a CR and its LF
            buffer = buffer.replace(b"\r\n", b"\n")
        if b"\n\n" not in buffer:
            continue
        complete = buffer.split(b"\n\n")
        buffer = complete.pop()
        if buffer:
            holds_part(response)
        batch = [frame for frame in complete if frame.strip()]
        if batch:
            yield batch


def frames(response: urllib3.BaseHTTPResponse, quiet_s: float | None = None) -> Iterator[bytes]:
    """The whole SSE frames of a stream, one by one (`frame_batches`); b"" each time the provider was silent
    for `quiet_s` seconds."""
    for batch in frame_batches(response, quiet_s):
        if not batch:
            yield b""
        yield from batch


def frame_data(frame: bytes) -> dict | None:
    """A frame's `data:` as a JSON object, or None when it holds none."""
    payload = b"\n".join(line[5:].lstrip(b" ") for line in frame.split(b"\n") if line.startswith(b"data:"))
    try:
        data = fastjson.loads(payload) if payload else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def data_frames(response: urllib3.BaseHTTPResponse, quiet_s: float | None = None) -> Iterator[dict]:
    """A stream's events as their parsed data, frames without a JSON object skipped; an empty dict each time
    the provider was silent for `quiet_s` seconds."""
    for frame in frames(response, quiet_s):
        if not frame:
            yield {}
            continue
        data = frame_data(frame)
        if data is not None:
            yield data
