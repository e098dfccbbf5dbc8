"""CPU per relayed stream chunk through the real `StreamRelay` and `ChunkedWriter`, in one process, no database.

    .venv/bin/python bench/relay_cpu.py [streams] [chunks]   # over sockets, as the gevent worker relays
    .venv/bin/python bench/relay_cpu.py python [chunks]      # the relay's Python alone, and an inline floor

Over sockets: a provider process writes `streams` chunked SSE chat streams over loopback TCP, one middle chunk
every 10-20 ms (as P5's emulator paces them), and reads the clients' ends. This process relays them as the
gevent worker does: urllib3's response, `StreamRelay` (its settlement a no-op), `ChunkedWriter` on a gevent
socket, the first piece written as gunicorn would. Printed: this process's CPU (user, system) per middle chunk,
the streams' set-up and end included. The middle chunks go through the stream pump (completions/pump.py) as in
the worker; `STREAM_PUMP_TICK_MS=0` relays them in each stream's own green thread instead.

`python`: the same relay over reads held in memory, one HTTP chunk a read, and a socket whose `send` only
counts, so no wait, switch or system call; then one function doing the same per-read work inline (check the
chunk frame, split the events, the learned shape, count, frame, send), for what the generator layers cost.
"""

from __future__ import annotations

import gevent.monkey

if __name__ == "__main__" and (len(__import__("sys").argv) < 2 or __import__("sys").argv[1] != "python"):
    gevent.monkey.patch_all()

import json
import os
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_WORDS = ["Hel", "lo", " world", " the", " quick", " brown", " fox", "."]  # 4 characters a chunk on average

PROVIDER = r"""
import json, random, socket, sys, threading, time
streams, chunks = int(sys.argv[1]), int(sys.argv[2])
words = WORDS
def event(obj):
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
def chunk(delta, finish=None):
    return {"id": "chatcmpl-upstream-1", "object": "chat.completion.chunk", "created": 1764000000,
            "model": "gpt-upstream", "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], "usage": None}
def frame(b):
    return b"%x\r\n%b\r\n" % (len(b), b)
def serve(conn):
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + frame(event(chunk({"role": "assistant", "content": ""}))))
    for i in range(chunks):
        time.sleep(random.uniform(0.010, 0.020))
        conn.sendall(frame(event(chunk({"content": words[i % len(words)]}))))
    usage = {"prompt_tokens": 9, "completion_tokens": chunks, "total_tokens": 9 + chunks}
    conn.sendall(frame(event(chunk({}, "stop"))) + frame(event({**chunk({}), "choices": [], "usage": usage}))
                 + frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    time.sleep(1)
    conn.close()
def drain(conn):
    while conn.recv(65536):
        pass
def serving(listener, target):
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=target, args=(conn,), daemon=True).start()
listeners = []
for target in (serve, drain):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listeners.append(listener)
    threading.Thread(target=serving, args=(listener, target), daemon=True).start()
print(*(listener.getsockname()[1] for listener in listeners), flush=True)
threading.Event().wait()
""".replace("WORDS", repr(_WORDS))


def _event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-upstream-1",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "gpt-upstream",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _relay_parts():
    from completions.relay import StreamRelay
    from completions.surfaces.chat import SURFACE
    from completions.upstreams.openai_chat import UPSTREAM

    class Relay(StreamRelay):
        def _settle(self, outcome, done):
            self.settled = True

    def relay(n: int, response) -> Relay:
        started = SimpleNamespace(
            generation_id=f"gen-{n:08d}",
            surface=SURFACE,
            clock=time.monotonic(),
            entry=SimpleNamespace(public_id="bench/model"),
            request=SimpleNamespace(wants_usage=True, reasoning_exclude=False),
        )
        return Relay(started, SimpleNamespace(response=response, upstream=UPSTREAM, passthrough=None, route=None), {})

    return relay


def over_sockets(streams: int, chunks: int) -> dict:
    import gevent
    import urllib3

    from mlrouter.handlers import ChunkedWriter

    new_relay = _relay_parts()
    provider = subprocess.Popen([sys.executable, "-c", PROVIDER, str(streams), str(chunks)], stdout=subprocess.PIPE)
    assert provider.stdout is not None
    port, sink_port = map(int, provider.stdout.readline().split())
    pool = urllib3.PoolManager(maxsize=streams + 10)
    chars = []

    def one(n: int) -> None:
        response = pool.request(
            "POST",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            body=b"{}",
            preload_content=False,
            retries=False,
            timeout=urllib3.Timeout(connect=5, read=60),
        )
        relay = new_relay(n, response)
        client = socket.create_connection(("127.0.0.1", sink_port))
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer = ChunkedWriter(relay.response(), client)
        for piece in writer:
            client.sendall(b"%X\r\n%b\r\n" % (len(piece), piece))  # gunicorn's first chunk (headers left out)
        writer.close()
        client.close()
        chars.append(relay.outcome.completion_chars)

    before, wall = os.times(), time.monotonic()
    gevent.joinall([gevent.spawn(one, n) for n in range(streams)], raise_error=True)
    after, wall = os.times(), time.monotonic() - wall
    provider.kill()
    provider.wait()
    events = streams * chunks
    assert sum(chars) == sum(len(_WORDS[i % len(_WORDS)]) for i in range(chunks)) * streams
    user, system = (after.user - before.user) * 1e6 / events, (after.system - before.system) * 1e6 / events
    return {
        "streams": streams,
        "chunks": events,
        "wall_s": round(wall, 2),
        "cpu_us_per_chunk": round(user + system, 2),
        "user_us": round(user, 2),
        "system_us": round(system, 2),
        "load": os.getloadavg()[0],
    }


class _Reads:
    """What http.client's reader would give: one HTTP chunk a read, from memory."""

    raw = None

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = iter(reads)

    def read1(self, size: int) -> bytes:
        return next(self.reads)


class _Response:
    chunked = True
    headers: dict = {}

    def __init__(self, reads: list[bytes]) -> None:
        self._original_response = SimpleNamespace(fp=_Reads(reads), _close_conn=lambda: None)

    def drain_conn(self) -> None:
        pass

    release_conn = close = drain_conn


class _CountingSocket:
    def __init__(self) -> None:
        self._sock = self
        self.sent = 0

    def send(self, frame: bytes) -> int:
        self.sent += 1
        return len(frame)


def python_only(chunks: int) -> dict:
    from mlrouter.handlers import ChunkedWriter

    middle = [_frame(_event(_chunk({"content": _WORDS[i % len(_WORDS)]}))) for i in range(chunks)]
    first = _frame(_event(_chunk({"role": "assistant", "content": ""})))
    end = _frame(_event(_chunk({}, "stop"))) + _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    relay = _relay_parts()(0, _Response([first, *middle, end]))
    sock = _CountingSocket()
    began = time.process_time()
    for _ in ChunkedWriter(relay.response(), sock):
        pass
    generic = time.process_time() - began
    assert relay.shape is not None

    began = time.process_time()
    chars = _inline(relay.shape, middle, sock.send)
    inline = time.process_time() - began
    assert chars == relay.outcome.completion_chars
    return {
        "chunks": chunks,
        "generic_us_per_chunk": round(generic * 1e6 / chunks, 2),
        "inline_us_per_chunk": round(inline * 1e6 / chunks, 2),
        "load": os.getloadavg()[0],
    }


def _inline(shape, reads: list[bytes], send) -> int:
    """The relay's per-read work for whole middle chunks in one function: the floor a fused loop could reach."""
    before, after, out_before, out_after, size = (
        shape.before,
        shape.after,
        shape.out_before,
        shape.out_after,
        shape.size,
    )
    chars = 0
    for data in reads:
        line_end = data.find(b"\r\n", 0, 10)
        if line_end <= 0 or not data.endswith(b"\r\n") or line_end + int(data[:line_end], 16) + 4 != len(data):
            break
        body = data[line_end + 2 : -2]
        out = []
        for event in body[:-2].split(b"\n\n"):
            payload = event[6:]
            if not event.startswith(b"data: ") or not (payload.startswith(before) and payload.endswith(after)):
                break
            text = payload[len(before) : len(payload) - len(after)]
            if len(payload) < size or b'"' in text or b"\\" in text:
                break
            chars += len(text.decode())
            out.append(out_before + text + out_after)
        piece = b"".join(out)
        send(b"%X\r\n%b\r\n" % (len(piece), piece))
    return chars


def main() -> None:
    import django

    django.setup()
    if len(sys.argv) > 1 and sys.argv[1] == "python":
        print(json.dumps(python_only(int(sys.argv[2]) if len(sys.argv) > 2 else 200_000)))
        return
    streams = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print(json.dumps(over_sockets(streams, int(sys.argv[2]) if len(sys.argv) > 2 else 400)))


if __name__ == "__main__":
    main()
