"""Fault injection around a live router (gunicorn, one gevent worker): private Redis and PostgreSQL servers
that a test may kill, freeze and restart, a load of official-SDK clients recording what each saw, and the
worker's process id for a SIGKILL.

The private servers run on free ports in the test's temporary folder. PostgreSQL refuses to run as root,
so its cluster belongs to the `postgres` user when the tests run as root.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
import redis
from django.db import connection

from tests.e2e.conftest import ROOT, ROUTER_LOGS, emulator_url, free_port, start_router  # noqa: F401

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server") or "redis-server"


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.1)


# ---- Redis ------------------------------------------------------------------------------------------------


class PrivateRedis:
    """A throwaway redis-server (no persistence) on its own port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        _wait(lambda: self._pings(client), 10, "redis-server did not start")

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.close()


# ---- PostgreSQL -------------------------------------------------------------------------------------------


def _as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a PostgreSQL server binary, as the `postgres` user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, **kwargs)
    if done.returncode:
        raise subprocess.CalledProcessError(done.returncode, args, done.stdout, done.stderr[-2000:])
    return done


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (initdb in a temporary folder, its own port), holding a copy of the
    test database's schema."""

    database = "mlrouter_faults"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        self.start()
        self._psql("postgres", f"CREATE DATABASE {self.database}")
        # The test database's schema and migration records (quicker than migrating from scratch).
        db = connection.settings_dict
        dump = subprocess.run(
            [
                str(PG_BIN / "pg_dump"),
                "--no-owner",
                "--no-privileges",
                "-h",
                db["HOST"] or "127.0.0.1",
                "-p",
                str(db["PORT"] or 5432),
                "-U",
                db["USER"],
                db["NAME"],
            ],
            check=True,
            capture_output=True,
            timeout=60,
            env={**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""},
        ).stdout
        subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                self.database,
            ],
            input=dump,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def _psql(self, database: str, sql: str) -> None:
        subprocess.run(
            [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", sql, database],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.folder / "log"),
                "-w",
                "-t",
                "30",
                "start",
            ]
        )

    def stop(self) -> None:
        """A fast shutdown: every connection is cut, as when the server goes away."""
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def close(self) -> None:
        try:
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        except subprocess.CalledProcessError:
            pass  # not running

    def books(self, command: str, payload: dict) -> dict:
        """Run tests/faults/books.py against this cluster's database."""
        env = {**os.environ, "DATABASE_URL": self.url, "DB_POOL_MAX_SIZE": "0"}
        done = subprocess.run(
            [sys.executable, "-m", "tests.faults.books", command],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def private_postgres(transactional_db) -> Iterator[PrivatePostgres]:
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as `postgres`.
    folder = Path(tempfile.mkdtemp(prefix="mlrouter-faults-pg-"))
    server = PrivatePostgres(folder)
    try:
        server.init()
        yield server
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)


# ---- the router -------------------------------------------------------------------------------------------


def worker_pids(master: int) -> list[int]:
    """The gunicorn master's worker processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid …: comm may hold spaces, so split after its closing parenthesis.
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                found.append(int(entry.name))
    return found


def router_log(url: str) -> str:
    return ROUTER_LOGS[url].read_text()


@pytest.fixture
def launch(tmp_path, transactional_db) -> Iterator[Callable[..., tuple[str, subprocess.Popen]]]:
    """Start a router with environment overrides (a private Redis or database, a spool folder); stopped after."""
    started: list[subprocess.Popen] = []

    def start(**env: str) -> tuple[str, subprocess.Popen]:
        env.setdefault("SETTLEMENT_SPOOL_DIR", str(tmp_path / "spool"))
        env.setdefault("DB_POOL_TIMEOUT_S", "0.5")  # production's wait (tests/e2e/ lets its routers queue longer)
        url, process = start_router(tmp_path, **env)
        started.append(process)
        return url, process

    yield start
    for process in started:
        # A quick shutdown: the books were read already, and idle keep-alive clients would hold a graceful one.
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def readyz(router: str) -> tuple[int, dict]:
    response = httpx.get(router.removesuffix("/v1") + "/readyz", timeout=5)
    return response.status_code, response.json()


# ---- load -------------------------------------------------------------------------------------------------


@dataclass
class Seen:
    """What one client call saw."""

    stream: bool
    started: float  # monotonic
    seconds: float
    status: int | None  # None: no HTTP status (the connection failed or broke mid-stream)
    generation_id: str = ""
    cost: Decimal | None = None  # the cost the answer reported: a complete answer was delivered
    error: str = ""
    code: str | None = None  # the error body's `code`
    retry_after: str | None = None


def _cost(value: object) -> Decimal | None:
    # The SDK parses JSON numbers as floats; repr gives back the digits the router wrote.
    return None if value is None else Decimal(repr(value))


def sdk_call(client: openai.OpenAI, model: str, *, stream: bool, emulator: dict | None = None) -> Seen:
    """One chat completion through the official SDK (no retries), recording what the client saw."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Hello there"}],
        "extra_body": {"emulator": emulator or {}},
    }
    began = time.monotonic()
    seen = Seen(stream=stream, started=began, seconds=0.0, status=None)
    try:
        if stream:
            raw = client.chat.completions.with_raw_response.create(
                stream=True, stream_options={"include_usage": True}, **body
            )
            seen.status, seen.generation_id = raw.http_response.status_code, raw.headers.get("x-generation-id", "")
            finished = False
            for chunk in raw.parse():
                if chunk.choices and chunk.choices[0].finish_reason:
                    finished = True
                if chunk.usage is not None and finished:
                    seen.cost = _cost((chunk.usage.model_extra or {}).get("cost"))
        else:
            raw = client.chat.completions.with_raw_response.create(**body)
            seen.status, seen.generation_id = raw.http_response.status_code, raw.headers.get("x-generation-id", "")
            completion = raw.parse()
            seen.cost = _cost((completion.usage.model_extra or {}).get("cost"))
    except openai.APIStatusError as exc:
        seen.status, seen.error, seen.code = exc.status_code, str(exc)[:300], exc.code
        seen.retry_after = exc.response.headers.get("retry-after")
        seen.generation_id = exc.response.headers.get("x-generation-id", "")
    except (openai.APIError, httpx.HTTPError) as exc:
        seen.error = f"{type(exc).__name__}: {exc}"[:300]
    seen.seconds = time.monotonic() - began
    return seen


@dataclass
class Load:
    """Clients sending chat completions (every other one streamed) until stopped."""

    router: str
    key: str
    model: str
    clients: int = 4
    emulator: dict = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _client_loop(self, number: int) -> None:
        stream = bool(number % 2)
        with openai.OpenAI(base_url=self.router, api_key=self.key, max_retries=0, timeout=30) as client:
            while not self._stop.is_set():
                self.seen.append(sdk_call(client, self.model, stream=stream, emulator=self.emulator))
                stream = not stream
                time.sleep(0.02)

    def __enter__(self) -> Load:
        for number in range(self.clients):
            thread = threading.Thread(target=self._client_loop, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def between(self, start: float, end: float) -> list[Seen]:
        """The calls that started in [start, end) (monotonic times)."""
        return [s for s in self.seen if start <= s.started < end]

    def delivered(self) -> dict[str, Decimal]:
        """Generation id -> cost, for every complete answer a client received."""
        return {s.generation_id: s.cost for s in self.seen if s.cost is not None}


def statuses(seen: list[Seen]) -> dict[int | None, int]:
    counts: dict[int | None, int] = {}
    for s in seen:
        counts[s.status] = counts.get(s.status, 0) + 1
    return counts


def fresh_rate_windows(redis_url: str) -> None:
    """Forget every rate window on a private Redis (the suite's keys never reach it otherwise)."""
    redis.Redis.from_url(redis_url).flushdb()
