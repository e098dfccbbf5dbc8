"""P5, realistic streams: long answers paced like a real model, hundreds at once, on one router core.

Each stream asks the emulator for 600 words in 300 chunks of 1, 2 and 3 words in turn, 10–20 ms apart
(50–100 chunks/s, `chunk_delay_ms` + `chunk_jitter_ms`), about 4.5 s long. C clients (200, then 500)
each keep one stream open, closed-loop, for a warm-up and a measured window; the router, the emulator
called directly and LiteLLM are loaded in turn with the same bodies. It reports the router's CPU per
relayed chunk (its process CPU time over every event the clients received), the chunks/s one core
would sustain at that cost, time to first token and the gaps between chunks, and what the router and
LiteLLM add to the direct call's.

The client (`python bench/streams.py --url …`, run by the step on the load core) is built to be cheap:
gevent, raw sockets, one connection per stream, no HTTP or JSON parsing past the status line; it
counts events (`data: ` markers) and timestamps every read that brought at least one. A gap is the
time between two such reads of one stream, after its first token, so events that arrive together
count as one read: what a client's screen sees. Every gap in the measured window counts; time to first
token counts for the streams begun in it. The client says how far behind schedule its own
reads ran, so that a saturated load core can be told from a slow server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

# 300 chunks of 1–3 words (600 words: 1, 2, 3 in turn), 50–100 chunks/s.
PACING = {"completion_tokens": 600, "chunk_words": 3, "chunk_delay_ms": 10, "chunk_jitter_ms": 10}
CONCURRENCIES = tuple(int(n) for n in os.environ.get("BENCH_P5_STREAMS", "200,500").split(","))
TARGETS = ("direct", "router", "litellm")
CPU_TARGET_US = 30.0
GAP_TARGET_MS = 5.0
_TOKEN = re.compile(rb'"content":\s?"[^"]')
_END = b"\r\n0\r\n\r\n"
_RECV = 65536


def stream_body(model: str) -> bytes:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a long answer, please."},
    ]
    payload = {
        "model": model,
        "messages": messages,
        "max_tokens": 1000,
        "stream": True,
        "stream_options": {"include_usage": True},
        "emulator": PACING,
    }
    return json.dumps(payload).encode()


# --- the client (its own process, on the load core) ---------------------------------------------------------


def _client(args: argparse.Namespace) -> dict:
    import gevent
    from gevent import socket

    host, port, path = _address(args.url)
    body = Path(args.body_file).read_bytes()
    keys = Path(args.keys_file).read_text().split() if args.keys_file else []
    heads = [[*args.header, f"Authorization: Bearer {key}"] for key in keys] or [args.header]
    requests = [_request(host, port, path, body, head) for head in heads]
    start = time.monotonic() + 0.05
    measure_from, stop_at = start + args.warmup, start + args.warmup + args.duration
    stats = {"events": 0, "events_measured": 0, "streams": 0, "ok": 0, "errors": {}, "open": 0, "max_open": 0}
    ttfts: list[float] = []
    gaps: list[float] = []
    lateness: list[float] = []

    def one(raw: bytes) -> tuple[bool, int]:
        sock = socket.create_connection((host, port), timeout=args.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            begun = time.monotonic()
            measured = begun >= measure_from
            sock.sendall(raw)
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(_RECV)
                if not data:
                    return False, 0
                head += data
            head, data = head.split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 200"):
                status = "HTTP " + head[9:12].decode(errors="replace")
                stats["errors"][status] = stats["errors"].get(status, 0) + 1
                stats.setdefault("sample_error", data[:300].decode(errors="replace"))
                return False, 0
            events, first, last, tail = 0, None, 0.0, b""
            while True:
                if data:
                    now = time.monotonic()
                    got = data.count(b"data: ")
                    if got:
                        events += got
                        if first is None:
                            if _TOKEN.search(data):
                                first = last = now
                                if measured:
                                    ttfts.append(now - begun)
                        else:
                            if now >= measure_from:  # streams are long: every gap in the window counts
                                gaps.append(now - last)
                            last = now
                    tail = (tail + data)[-len(_END) :]
                    if tail == _END:
                        return True, events
                data = sock.recv(_RECV)
                if not data:
                    stats["errors"]["closed mid-stream"] = stats["errors"].get("closed mid-stream", 0) + 1
                    return False, events
        finally:
            sock.close()

    def worker(index: int) -> None:
        raw = requests[index % len(requests)]
        gevent.sleep(max(0.0, start + index * args.ramp / args.concurrency - time.monotonic()))
        while time.monotonic() < stop_at:
            begun = time.monotonic()
            stats["open"] += 1
            stats["max_open"] = max(stats["max_open"], stats["open"])
            try:
                ok, events = one(raw)
            except OSError as exc:
                ok, events = False, 0
                stats["errors"][type(exc).__name__] = stats["errors"].get(type(exc).__name__, 0) + 1
            stats["open"] -= 1
            stats["events"] += events
            if begun >= measure_from:
                stats["streams"] += 1
                stats["ok"] += ok
                stats["events_measured"] += events
            if not ok:
                gevent.sleep(0.5)  # as an SDK backs off before retrying

    def watch() -> None:
        """How late this process wakes up: a 10 ms sleep that takes longer means the load core is saturated."""
        while time.monotonic() < stop_at:
            asked = time.monotonic()
            gevent.sleep(0.01)
            lateness.append(time.monotonic() - asked - 0.01)

    workers = [gevent.spawn(worker, i) for i in range(args.concurrency)]
    watcher = gevent.spawn(watch)
    gevent.joinall(workers, timeout=args.warmup + args.duration + args.timeout + 10)
    watcher.kill()
    stuck = sum(1 for w in workers if not w.dead)
    gevent.killall(workers, block=False)
    return {
        **stats,
        "stuck": stuck,
        "seconds": round(time.monotonic() - start, 2),
        "ttft_p50_ms": _pct(ttfts, 50),
        "ttft_p99_ms": _pct(ttfts, 99),
        "gap_p50_ms": _pct(gaps, 50),
        "gap_p99_ms": _pct(gaps, 99),
        "gap_max_ms": _pct(gaps, 100),
        "client_late_p99_ms": _pct(lateness, 99),
        "reads": len(gaps),
    }


def _address(url: str) -> tuple[str, int, str]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise SystemExit("the streams client only targets 127.0.0.1")
    return parts.hostname, parts.port or 80, parts.path


def _request(host: str, port: int, path: str, body: bytes, headers: list[str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _pct(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank), in milliseconds."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[rank] * 1000, 2)


# --- the step (imported by run.py) --------------------------------------------------------------------------


def run(bench, log, *, quick: bool, profile: bool = False) -> list[dict]:
    """P5 against every running target at each concurrency; a dict per (concurrency, target).

    With `profile`, the router's load at the highest concurrency runs under `py-spy record`
    (bench/results/profile-p5-router.txt; its summary in the result's `profile`).
    """
    import subprocess

    import procs

    warmup, duration = (2.0, 4.0) if quick else (3.0, 10.0)
    # A cold router loads each key and catalog entry on first use, and LiteLLM's first calls are slow: one
    # unmeasured stream per key first, so that no load starts cold (in a full run P1–P4 did this already).
    for target in ("router", "litellm"):
        if target in bench.urls:
            bench.load(target, concurrency=len(_keys(bench)), stream=True, emulator=None, once=True)
    results = []
    for concurrency in CONCURRENCIES:
        for target in TARGETS:
            if target not in bench.urls:
                continue
            body_file = bench.workdir / f"p5-{target}.json"
            body_file.write_bytes(stream_body(bench.models[target]))
            argv = [
                *bench.load_core, sys.executable, str(BENCH / "streams.py"),
                "--url", f"{bench.urls[target]}/chat/completions", "--body-file", str(body_file),
                "--concurrency", str(concurrency), "--warmup", str(warmup), "--duration", str(duration),
                "--ramp", str(min(2.0, warmup)),
            ]  # fmt: skip
            if target == "router":
                argv += ["--keys-file", str(bench.keys["spread"])]
            elif target == "litellm":
                argv += ["--header", f"Authorization: Bearer {bench.litellm_key}"]
            log(f"P5 {concurrency} paced streams: {target}")
            pid = bench.server_pid.get(target)
            bench.sampler.pid, bench.sampler.application = pid, f"bench-{target}"
            cpu_before = procs.cpu_seconds(pid) if pid else None
            profiled = profile and target == "router" and concurrency == max(CONCURRENCIES)
            spy = _spy(bench, pid, warmup + duration + 5) if profiled else None
            with bench.sampler:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=warmup + duration + 180)
            if done.returncode != 0:
                raise RuntimeError(f"the streams client failed against {target}:\n{done.stderr[-2000:]}")
            result = json.loads(done.stdout)
            result.update(target=target, concurrency=concurrency)
            if spy is not None:
                result["profile"] = _spy_summary(spy)
            if pid:
                result["server_cpu_s"] = round(procs.cpu_seconds(pid) - cpu_before, 3)
                if result["events"]:
                    result["cpu_us_per_chunk"] = round(1e6 * result["server_cpu_s"] / result["events"], 1)
                    result["chunks_per_core_s"] = round(1e6 / max(result["cpu_us_per_chunk"], 0.1))
                result["cpu_share"] = round(result["server_cpu_s"] / result["seconds"], 2)
                result["max_rss_mb"] = None if bench.sampler.max_rss is None else round(bench.sampler.max_rss, 1)
            if target == "router":
                result["max_pg_connections"] = bench.sampler.max_conns
            log(
                f"    {result['ok']}/{result['streams']} streams, {result['events']} events, TTFT p50 "
                f"{result['ttft_p50_ms']} ms, gap p99 {result['gap_p99_ms']} ms, CPU "
                f"{result.get('cpu_us_per_chunk')} µs/chunk, client late p99 {result['client_late_p99_ms']} ms"
            )
            results.append(result)
    return results


PROFILE = BENCH / "results" / "profile-p5-router.txt"


def _keys(bench) -> list[str]:
    return bench.keys["spread"].read_text().split()


def _spy(bench, pid: int | None, seconds: float):
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if pid is None or not Path(spy).exists():
        return None
    argv = [*bench.load_core, spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    argv += ["--duration", str(int(seconds)), "--output", str(PROFILE)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _spy_summary(spy) -> dict | None:
    import profile_summary

    try:
        spy.wait(timeout=60)
    finally:
        if spy.poll() is None:
            spy.terminate()
            spy.wait(timeout=10)
    return profile_summary.summarize(str(PROFILE), top=25) if PROFILE.exists() else None


def _find(results: list[dict], concurrency: int, target: str) -> dict | None:
    return next((r for r in results if r["concurrency"] == concurrency and r["target"] == target), None)


def _minus(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{a - b:+.2f}"


def _n(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def table(results: list[dict]) -> str:
    """P5's table: a row per concurrency and target, the added figures against direct and LiteLLM first."""
    labels = {"direct": "emulator direct", "router": "ML Router", "litellm": "LiteLLM proxy"}
    head = (
        "| streams | target | CPU µs/chunk | chunks/s per core | TTFT p50 +direct ms | TTFT p99 +direct ms "
        "| gap p99 +direct ms | gap p99 vs LiteLLM ms | TTFT p50 ms | TTFT p99 ms | gap p50 ms | gap p99 ms "
        "| events | streams ok | CPU share | RSS MB | client late p99 ms |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        direct = _find(results, r["concurrency"], "direct") if r["target"] != "direct" else None
        litellm = _find(results, r["concurrency"], "litellm") if r["target"] == "router" else None
        row = [
            str(r["concurrency"]),
            labels[r["target"]],
            _n(r.get("cpu_us_per_chunk")),
            _n(r.get("chunks_per_core_s"), 0),
            _minus(r["ttft_p50_ms"], direct and direct["ttft_p50_ms"]),
            _minus(r["ttft_p99_ms"], direct and direct["ttft_p99_ms"]),
            _minus(r["gap_p99_ms"], direct and direct["gap_p99_ms"]),
            _minus(r["gap_p99_ms"], litellm and litellm["gap_p99_ms"]),
            _n(r["ttft_p50_ms"], 2),
            _n(r["ttft_p99_ms"], 2),
            _n(r["gap_p50_ms"], 2),
            _n(r["gap_p99_ms"], 2),
            f"{r['events']:,}",
            f"{r['ok']}/{r['streams']}",
            _n(r.get("cpu_share"), 2),
            _n(r.get("max_rss_mb")),
            _n(r["client_late_p99_ms"], 2),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def targets(results: list[dict]) -> list[tuple[bool, str]]:
    """The issue's targets at the highest concurrency: CPU per chunk, and the added inter-chunk p99."""
    top = max(CONCURRENCIES)
    router, direct = _find(results, top, "router"), _find(results, top, "direct")
    if router is None:
        return []
    checks = []
    cpu = router.get("cpu_us_per_chunk")
    if cpu is not None:
        checks.append((cpu <= CPU_TARGET_US, f"P5 {top} streams: ≤ {CPU_TARGET_US:.0f} µs of CPU per chunk: {cpu} µs"))
    if direct is not None and router["gap_p99_ms"] is not None and direct["gap_p99_ms"] is not None:
        added = router["gap_p99_ms"] - direct["gap_p99_ms"]
        checks.append(
            (
                added <= GAP_TARGET_MS,
                f"P5 {top} streams: added inter-chunk p99 ≤ {GAP_TARGET_MS:.0f} ms: {added:+.2f} ms "
                f"({router['gap_p99_ms']} vs {direct['gap_p99_ms']} ms direct)",
            )
        )
    return checks


def text(results: list[dict]) -> str:
    """The table, the verdicts and, when one was taken, the router's profile."""
    import profile_summary

    verdicts = "\n".join(f"- {'PASS' if ok else 'FAIL'}  {line}" for ok, line in targets(results))
    out = f"P5 realistic streams (300 chunks of 1–3 words at 50–100 chunks/s):\n\n{table(results)}\n\n{verdicts}"
    for r in results:
        if r.get("profile"):
            out += f"\n\nprofile of the ML Router worker during P5 at {r['concurrency']} streams:\n"
            out += profile_summary.text(r["profile"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="P5's stream client: paced SSE streams, timestamps per read.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--keys-file")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--ramp", type=float, default=2.0, help="spread the clients' first streams over this")
    parser.add_argument("--timeout", type=float, default=60.0)
    json.dump(_client(parser.parse_args()), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
