"""Summarize a py-spy profile in collapsed-stack form (`py-spy record --format raw`).

Where does the worker's CPU go? Each sample is attributed to the first matching category walking its
stack from the leaf up (self time), and separately counted for every category anywhere on its stack
(inclusive time). speedscope.app opens the same file for a flame graph.

    python bench/profile_summary.py bench/results/profile-p2.txt
"""

from __future__ import annotations

import re
import sys
from collections import Counter

# (category, pattern on "function (file:line)"); the first match walking up from the leaf wins.
CATEGORIES: list[tuple[str, re.Pattern[str]]] = [
    ("JSON encode/decode", re.compile(r"\((json|orjson)/")),
    ("PostgreSQL driver (psycopg, pool)", re.compile(r"\(psycopg(_pool|_binary)?/")),
    ("Redis (redis-py)", re.compile(r"\(redis/")),
    ("upstream HTTP (urllib3, http.client)", re.compile(r"\((urllib3/|http/client\.py)")),
    ("Django ORM (query building, models)", re.compile(r"\(django/db/")),
    ("DRF", re.compile(r"\(rest_framework/")),
    ("Django request/response, middleware", re.compile(r"\((django|whitenoise|asgiref)/")),
    ("ML Router code", re.compile(r"\((completions|billing|accounts|mlrouter)/")),
    ("logging", re.compile(r"\(logging/")),
    ("gunicorn/gevent server, sockets", re.compile(r"\((gunicorn|gevent)/|\((socket|selectors|ssl)\.py")),
    ("stdlib (decimal, copy, datetime, …)", re.compile(r"\(")),
]
# gevent's native threadpool threads waiting for work look busy to py-spy; they are not the worker's CPU.
IDLE = re.compile(r"_WorkerGreenlet\.run \(gevent/threadpool\.py")
OURS = re.compile(r"\((completions|billing|accounts)/")
# The request's steps, by the function that performs each (inclusive time; nested steps are indented).
BUDGET: list[tuple[str, re.Pattern[str]]] = [
    ("the request's view (completions/pipeline.py surface_view)", re.compile(r"^surface_view\.<locals>\.view ")),
    ("  parse + validate the body", re.compile(r"^parse_chat_request ")),
    ("  key check (in-process cache)", re.compile(r"^principal_authenticate ")),
    ("  rate limit (one Redis Lua call)", re.compile(r"^rate_limit_hit ")),
    ("  catalog lookup (in-process cache)", re.compile(r"^catalog_entry ")),
    ("  hold + Generation row (generation_start)", re.compile(r"^generation_start ")),
    ("  give the DB connection back (release_db)", re.compile(r"^release_db ")),
    ("  upstream request (upstream_open, urllib3)", re.compile(r"^upstream_open ")),
    ("  read upstream + price + respond (relay_plain)", re.compile(r"^relay_plain ")),
    ("after the answer was sent: the charge (Closing.commit)", re.compile(r"^Closing\.commit ")),
]
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def parse(path: str) -> list[tuple[list[str], int]]:
    stacks = []
    with open(path) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            frames, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            stacks.append((frames.split(";"), int(count)))
    return stacks


def category(frame: str) -> str | None:
    for name, pattern in CATEGORIES:
        if pattern.search(frame):
            return name
    return None


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    return f"{match['func']} ({path})"


def summarize(path: str, top: int = 15) -> dict:
    stacks = parse(path)
    idle = sum(count for frames, count in stacks if IDLE.search(frames[0]))
    stacks = [(frames, count) for frames, count in stacks if not IDLE.search(frames[0])]
    total = sum(count for _, count in stacks)
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    for frames, count in stacks:
        found = None
        for frame in reversed(frames):
            found = category(frame)
            if found:
                break
        self_time[found or "other"] += count
        for name in {category(frame) for frame in frames} - {None}:
            inclusive[name] += count
        leaf[short(frames[-1])] += count
        for name in {short(frame) for frame in frames if OURS.search(frame)}:
            ours[name] += count
        for label, pattern in BUDGET:
            if any(pattern.search(frame) for frame in frames):
                steps[label] += count

    def share(counter: Counter[str], n: int | None = None) -> list[tuple[str, float]]:
        return [(name, round(100 * c / total, 1)) for name, c in counter.most_common(n)] if total else []

    return {
        "samples": total,
        "idle_threadpool_samples_dropped": idle,
        "self_percent": share(self_time),
        "inclusive_percent": share(inclusive),
        "top_leaf_functions_percent": share(leaf, top),
        "our_functions_inclusive_percent": share(ours, top),
        "request_steps_percent": [
            (label, round(100 * steps[label] / total, 1) if total else 0.0) for label, _ in BUDGET
        ],
    }


def text(summary: dict, ms_per_request: float | None = None) -> str:
    """A readable summary; with `ms_per_request` (CPU per request) the request's steps are also in ms."""
    lines = [f"{summary['samples']} samples of the worker while it was busy (running or waiting for a CPU)"]
    for title, key in (
        ("self time by category", "self_percent"),
        ("inclusive time by category", "inclusive_percent"),
        ("hottest leaf functions", "top_leaf_functions_percent"),
        ("ML Router functions (inclusive)", "our_functions_inclusive_percent"),
    ):
        lines.append(f"  {title}:")
        lines += [f"    {pct:5.1f}%  {name}" for name, pct in summary[key]]
    lines.append("  the request's steps (inclusive; the rest is gunicorn, gevent, the WSGI handler, middleware):")
    for label, pct in summary["request_steps_percent"]:
        ms = f"  ≈ {pct * ms_per_request / 100:.2f} ms" if ms_per_request else ""
        lines.append(f"    {pct:5.1f}%{ms}  {label}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(text(summarize(sys.argv[1])))
