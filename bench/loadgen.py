"""A small closed-loop HTTP/1.1 load generator on gevent: keep-alive connections, per-request latency, TTFT.

Each of `--concurrency` green workers owns one keep-alive connection and sends the same POST again and
again until the deadline (or once, with `--once`, for the held-streams test). It reports, as JSON on
stdout: requests per second, latency percentiles, time to first token (the first SSE event whose
delta carries non-empty `content`, or what `--token` matches) and how many requests were in flight at most.
A stream is complete when its last event holds `--done` (`data: [DONE]`; `message_stop` for Anthropic's
Messages, `response.completed` for Responses).

Only 127.0.0.1 is accepted as a target. The HTTP parser is deliberately minimal (status line,
Content-Length, chunked, read-to-close) so that the generator costs little CPU beside the emulator.

    python bench/loadgen.py --url http://127.0.0.1:8000/v1/chat/completions --body-file body.json \
        --header "Authorization: Bearer orb_live_…" --concurrency 32 --duration 10 --warmup 2
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import gevent
from gevent import socket

# A delta with non-empty text: `"content":"x` (compact JSON) or `"content": "x` (spaced JSON).
_CONTENT = re.compile(rb'"content":\s?"[^"]')
_DONE = b"data: [DONE]"
_RECV = 65536


class ProtocolError(Exception):
    """The server closed the connection or sent something this parser does not understand."""


@dataclass
class Stats:
    """What every worker records (requests started after the warm-up only)."""

    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    bad_bodies: int = 0
    total: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    streaming: int = 0  # streams past their first token and not finished
    max_streaming: int = 0
    sample_body: str = ""

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a prebuilt request and reads one response."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def open(self) -> None:
        self.close()
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fill(self) -> None:
        data = self.sock.recv(_RECV)
        if not data:
            raise ProtocolError("connection closed by the server")
        self.buffer += data

    def request(self, raw: bytes, on_data) -> tuple[int, bytes]:
        """Send `raw`, return (status, body); `on_data(body_so_far)` sees the body as it arrives."""
        if self.sock is None:
            self.open()
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if b"chunked" in headers.get(b"transfer-encoding", b""):
            body = self._chunked(on_data)
        elif b"content-length" in headers:
            length = int(headers[b"content-length"])
            while len(self.buffer) < length:
                self._fill()
            body, self.buffer = self.buffer[:length], self.buffer[length:]
            on_data(body)
        else:
            body = self._to_close(on_data)
        if headers.get(b"connection") == b"close":
            self.close()
        return status, body

    def _chunked(self, on_data) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buffer:
                self._fill()
            size_line, self.buffer = self.buffer.split(b"\r\n", 1)
            size = int(size_line.split(b";", 1)[0], 16)
            while len(self.buffer) < size + 2:
                self._fill()
            chunk, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
            if size == 0:
                return body
            body += chunk
            on_data(body)

    def _to_close(self, on_data) -> bytes:
        body = self.buffer
        self.buffer = b""
        while True:
            data = self.sock.recv(_RECV)
            if not data:
                self.close()
                return body
            body += data
            on_data(body)


def _last_event(body: bytes) -> bytes:
    """The stream's last SSE event (its `event:` and `data:` lines)."""
    body = body.rstrip()
    return body[body.rfind(b"\n\n") + 2 :]


def _complete(body: bytes, done: bytes) -> bool:
    """Whether the stream's last event holds `done` (a `data: [DONE]` after it, as LiteLLM sends, aside)."""
    last = _last_event(body)
    if last == _DONE and done != _DONE:
        last = _last_event(body.rstrip()[: -len(_DONE)])
    return done in last


def build_request(url: str, body: bytes, headers: list[str]) -> tuple[str, int, bytes]:
    """The target host, port and the raw bytes of the POST."""
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise SystemExit("loadgen only targets 127.0.0.1")
    port = parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return parts.hostname, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def worker(
    index: int,
    host: str,
    port: int,
    requests: list[bytes],
    stats: Stats,
    *,
    start_at: float,
    measure_from: float,
    stop_at: float,
    once: bool,
    stream: bool,
    timeout: float,
    token: re.Pattern[bytes] = _CONTENT,
    done: bytes = _DONE,
) -> None:
    """Send requests in a loop on one connection (or once), recording those started after the warm-up."""
    raw = requests[index % len(requests)]
    conn = Connection(host, port, timeout)
    delay = start_at - time.monotonic()
    if delay > 0:
        gevent.sleep(delay)
    while True:
        begun = time.monotonic()
        if not once and begun >= stop_at:
            break
        first_token: list[float] = []

        def on_data(body: bytes, first_token=first_token) -> None:
            if stream and not first_token and token.search(body):
                first_token.append(time.monotonic())
                stats.streaming += 1
                stats.max_streaming = max(stats.max_streaming, stats.streaming)

        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            status, body = conn.request(raw, on_data)
        except (OSError, ProtocolError, ValueError, IndexError) as exc:
            stats.in_flight -= 1
            stats.streaming -= len(first_token)
            conn.close()
            if begun >= measure_from:
                stats.count(stats.errors, type(exc).__name__)
            if once:
                break
            gevent.sleep(0.01)
            continue
        stats.in_flight -= 1
        stats.streaming -= len(first_token)
        stats.total += 1
        ended = time.monotonic()
        if begun >= measure_from or once:
            stats.latencies.append(ended - begun)
            stats.count(stats.statuses, str(status))
            if stream and first_token:
                stats.ttfts.append(first_token[0] - begun)
            complete = _complete(body, done) if stream else body.startswith(b"{")
            if status != 200 or not complete:
                stats.bad_bodies += 1
                if not stats.sample_body:
                    stats.sample_body = body[:300].decode(errors="replace")
        if once:
            break
    conn.close()


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) in milliseconds."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[rank] * 1000, 3)


def summary(stats: Stats, measured_s: float) -> dict:
    done = len(stats.latencies)
    ok = stats.statuses.get("200", 0) - stats.bad_bodies
    return {
        "requests": done,
        "requests_total": stats.total,
        "ok": max(ok, 0),
        "statuses": stats.statuses,
        "errors": stats.errors,
        "bad_bodies": stats.bad_bodies,
        "sample_bad_body": stats.sample_body,
        "seconds": round(measured_s, 3),
        "rps": round(done / measured_s, 1) if measured_s > 0 else None,
        "p50_ms": percentile(stats.latencies, 50),
        "p95_ms": percentile(stats.latencies, 95),
        "p99_ms": percentile(stats.latencies, 99),
        "max_ms": percentile(stats.latencies, 100),
        "ttft_p50_ms": percentile(stats.ttfts, 50),
        "ttft_p95_ms": percentile(stats.ttfts, 95),
        "ttft_p99_ms": percentile(stats.ttfts, 99),
        "max_in_flight": stats.max_in_flight,
        "max_streaming": stats.max_streaming,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True, help="JSON request body")
    parser.add_argument("--header", action="append", default=[], help="extra header, repeatable")
    parser.add_argument("--keys-file", help="one bearer token a line; worker i uses key i mod n")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds (after the warm-up)")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--once", action="store_true", help="each worker sends exactly one request")
    parser.add_argument("--ramp", type=float, default=0.0, help="spread worker starts over this many seconds")
    parser.add_argument("--stream", action="store_true", help="expect SSE; record time to first token")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout per operation")
    parser.add_argument("--token", default=_CONTENT.pattern.decode(), help="regex of the first token's event")
    parser.add_argument("--done", default=_DONE.decode(), help="what a complete stream's last bytes hold")
    args = parser.parse_args()

    with open(args.body_file, "rb") as fh:
        body = fh.read()
    keys = []
    if args.keys_file:
        with open(args.keys_file) as fh:
            keys = [line.strip() for line in fh if line.strip()]
    header_sets = [[*args.header, f"Authorization: Bearer {key}"] for key in keys] or [args.header]
    host, port = None, None
    requests = []
    for headers in header_sets:
        host, port, raw = build_request(args.url, body, headers)
        requests.append(raw)

    stats = Stats()
    now = time.monotonic()
    start_at = now + 0.05
    measure_from = start_at + (0 if args.once else args.warmup)
    stop_at = measure_from + args.duration
    step = args.ramp / max(args.concurrency, 1)
    workers = [
        gevent.spawn(
            worker,
            i,
            host,
            port,
            requests,
            stats,
            start_at=start_at + i * step,
            measure_from=measure_from,
            stop_at=stop_at,
            once=args.once,
            stream=args.stream,
            timeout=args.timeout,
            token=re.compile(args.token.encode()),
            done=args.done.encode(),
        )
        for i in range(args.concurrency)
    ]
    # Bounded: a worker stuck past its timeout is abandoned, never waited for forever.
    limit = (args.ramp + args.timeout * 2 + 5) if args.once else (args.warmup + args.duration + args.timeout + 5)
    gevent.joinall(workers, timeout=limit)
    ended = time.monotonic()
    stuck = sum(1 for w in workers if not w.dead)
    gevent.killall(workers, block=False)
    measured = (ended - start_at) if args.once else args.duration
    result = summary(stats, measured)
    result["stuck_workers"] = stuck
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
