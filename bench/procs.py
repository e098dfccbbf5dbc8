"""Processes the benchmark starts, and what it samples from them (RSS, PostgreSQL connections).

Every process is started in its own session and registered; `Processes.stop_all()` stops exactly
those (their process groups, by id), also after Ctrl-C or an error.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinning() -> tuple[list[str], list[str]]:
    """taskset prefixes: (server core, load core); empty when taskset is missing or there is one core."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return [], []
    return ["taskset", "-c", "0"], ["taskset", "-c", "1"]


@dataclass
class Started:
    name: str
    process: subprocess.Popen
    log: Path


@dataclass
class Processes:
    log_dir: Path
    started: list[Started] = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path) -> Started:
        log = self.log_dir / f"{name}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, env=env,
                start_new_session=True,
            )  # fmt: skip
        entry = Started(name, process, log)
        self.started.append(entry)
        return entry

    def stop(self, entry: Started, timeout: float = 15) -> None:
        process = entry.process
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if entry in self.started:
            self.started.remove(entry)

    def stop_all(self) -> None:
        for entry in reversed(list(self.started)):
            try:
                self.stop(entry)
            except Exception as exc:  # keep stopping the rest
                print(f"  could not stop {entry.name} (pid {entry.process.pid}): {exc}")


def wait_http(url: str, entry: Started, timeout: float = 60, headers: dict[str, str] | None = None) -> None:
    """Wait until `url` answers (any HTTP status) or the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if entry.process.poll() is not None:
            raise RuntimeError(f"{entry.name} exited early; see {entry.log}:\n{entry.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{entry.name} did not answer {url} within {timeout:.0f} s; see {entry.log}")


def children(pid: int) -> list[int]:
    """Direct children of a process, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE_KB / 1024
    except OSError:
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process used so far."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


class Sampler:
    """Samples a server process's RSS and its PostgreSQL connections (by application_name) while a load runs."""

    def __init__(self, admin_dsn: str, db_name: str, interval: float = 0.25) -> None:
        self.admin_dsn = admin_dsn
        self.db_name = db_name
        self.interval = interval
        self.pid: int | None = None
        self.application = ""
        self.max_rss: float | None = None
        self.max_conns: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self.max_rss, self.max_conns = None, None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                if self.pid is not None:
                    rss = rss_mb(self.pid)
                    if rss is not None:
                        self.max_rss = max(self.max_rss or 0.0, rss)
                count = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                    [self.db_name, self.application],
                ).fetchone()[0]
                self.max_conns = max(self.max_conns or 0, count)
                self._stop.wait(self.interval)
