"""Relay scripted provider streams through `StreamRelay` and `ChunkedWriter` under gevent, with and without the
stream pump, and print what each client received and what each stream counted (JSON on stdout).

Run by tests/completions/test_stream_pump.py in a process of its own, because the pump works only where gevent
has patched the socket module: `python tests/completions/pump_streams.py < scenarios.json`. A scenario is a
provider's script: a list of writes, each `[delay_s, bytes as latin-1]`, and `drop` (close without the
chunked terminator); `kind: anthropic` passes a Messages stream through instead of relaying chat;
`client_reads` makes the client leave after that many bytes, `client_slow` makes it read 1 KiB at a time
with a small receive buffer.
"""

from __future__ import annotations

import gevent.monkey

gevent.monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import django  # noqa: E402

django.setup()

import gevent  # noqa: E402
import urllib3  # noqa: E402

from completions.pump import Pump  # noqa: E402
from completions.relay import StreamRelay  # noqa: E402
from completions.surfaces import chat, messages  # noqa: E402
from completions.upstreams import anthropic_messages, openai_chat  # noqa: E402
from mlrouter.handlers import ChunkedWriter  # noqa: E402

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


class Relay(StreamRelay):
    pumped_reads = 0

    def pumped_read(self, data):
        out = super().pumped_read(data)
        self.pumped_reads += out is not None
        return out

    def _settle(self, outcome, done):
        self.settled = True
        status = "cancelled" if self.client_gone_at is not None else "completed" if done else "failed"
        self.settled_as = (status, done, self.error)


def provider(scenarios: list[dict]) -> int:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)

    def serve(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(65536)
        script = scenarios[int(head.split(b"/s/", 1)[1].split(b" ", 1)[0])]
        conn.sendall(HEAD)
        try:
            for delay, data in script["writes"]:
                gevent.sleep(delay)
                conn.sendall(data.encode("latin-1"))
            if not script.get("drop"):
                gevent.sleep(1)  # the relay ends the body; the connection stays open, as a provider's does
        except OSError:
            pass
        conn.close()

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            gevent.spawn(serve, conn)

    gevent.spawn(accept)
    return listener.getsockname()[1]


def relay_one(pool: urllib3.PoolManager, port: int, n: int, scenario: dict, pump: Pump | None) -> dict:
    response = pool.request(
        "POST",
        f"http://127.0.0.1:{port}/s/{n}",
        body=b"{}",
        preload_content=False,
        retries=False,
        timeout=urllib3.Timeout(connect=5, read=10),
    )
    native = scenario.get("kind") == "anthropic"  # Messages passed through to an anthropic-messages route
    started = SimpleNamespace(
        generation_id=f"gen-{n:08d}",
        surface=messages.SURFACE if native else chat.SURFACE,
        clock=time.monotonic(),
        entry=SimpleNamespace(public_id="test/model"),
        request=SimpleNamespace(wants_usage=True, reasoning_exclude=False),
    )
    call = SimpleNamespace(
        response=response,
        upstream=anthropic_messages.UPSTREAM if native else openai_chat.UPSTREAM,
        passthrough=anthropic_messages.PASSTHROUGH if native else None,
        route=None,
    )
    relay = Relay(started, call, {})
    relay.pump = pump
    ours, theirs = socket.socketpair()
    if scenario.get("client_slow"):
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    leave_after = scenario.get("client_reads")

    def client() -> bytes:
        got = b""
        while True:
            if scenario.get("client_slow"):
                gevent.sleep(0.002)
            data = theirs.recv(1024 if scenario.get("client_slow") else 65536)
            if not data:
                return got
            got += data
            if leave_after is not None and len(got) >= leave_after:
                theirs.close()
                return got

    reader = gevent.spawn(client)
    writer = ChunkedWriter(relay.response(), ours)
    failure = ""
    try:
        for piece in writer:
            ours.sendall(b"%X\r\n%b\r\n" % (len(piece), piece))  # the first piece, as gunicorn sends it
    except OSError as exc:
        failure = type(exc).__name__
    finally:
        writer.close()
    try:
        ours.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    got = reader.get(timeout=20)
    deadline = time.monotonic() + 10
    while not relay.settled and time.monotonic() < deadline:  # a client gone: the drain settles beside
        gevent.sleep(0.01)
    ours.close()
    return {
        "client": got.decode("latin-1"),
        "chars": relay.outcome.completion_chars,
        "finish": relay.outcome.finish_reason,
        "usage": relay.native.usage if relay.native is not None else relay.usage,
        "settled": list(relay.settled_as) if relay.settled else None,
        "failure": failure,
        "pumped_reads": relay.pumped_reads,
    }


def main() -> None:
    scenarios = json.load(sys.stdin)
    port = provider(scenarios)
    out: dict = {}
    for mode in ("alone", "pumped"):
        pool = urllib3.PoolManager(maxsize=len(scenarios) + 10)  # connections of its own: none closed under it
        pump = Pump(0.001) if mode == "pumped" else None
        jobs = [gevent.spawn(relay_one, pool, port, n, s, pump) for n, s in enumerate(scenarios)]
        gevent.joinall(jobs, raise_error=True)
        out[mode] = [job.value for job in jobs]
        out[f"{mode}_relayed_reads"] = pump.relayed if pump is not None else 0
        out[f"{mode}_left_in_pump"] = len(pump.streams) if pump is not None else 0
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
