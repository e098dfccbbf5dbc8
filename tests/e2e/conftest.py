"""Live servers for end-to-end tests: the upstream emulator and ML Router under gunicorn + gevent.

The router processes use the test database (tests that talk to them must commit their data:
`transactional_db`) and the test Redis, exactly as production would.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
import requests
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from completions.models import Generation, Model, Provider, Route
from tests.factories import funded_account, key_for

ROOT = Path(settings.BASE_DIR)


@contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free 127.0.0.1 port from a thread (a scripted provider); yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:  # not listening yet, or too busy starting to answer in time
            time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def emulator_url(tmp_path_factory) -> Iterator[str]:
    """Base URL (…/v1) of a standalone upstream emulator."""
    port = free_port()
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "run_emulator", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/v1/models", process, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(process)


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


# Each started router's base URL -> the file its output (gunicorn's and the app's log lines) goes to.
ROUTER_LOGS: dict[str, Path] = {}


def start_router(log_dir: Path, **env_overrides: str) -> tuple[str, subprocess.Popen]:
    """Start one gunicorn (one gevent worker) serving ML Router on a free port."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "false",
        "DB_POOL_MAX_SIZE": "4",
        # A hundred concurrent requests share these 4 connections on a busy 2-core test box: let them queue
        # longer than production's 0.5 s before a 503 (tests/faults/ keeps the production wait).
        "DB_POOL_TIMEOUT_S": "5",
        "PGAPPNAME": f"mlrouter-router-{port}",
        "AUTH_CACHE_SECONDS": "1",
        "CATALOG_CACHE_SECONDS": "1",
        "GUNICORN_ACCESSLOG": "",
        **env_overrides,
    }
    log = log_dir / f"router-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "platform/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "mlrouter.wsgi",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
    wait_until_up(f"http://127.0.0.1:{port}/v1/models", process, log)
    ROUTER_LOGS[f"http://127.0.0.1:{port}/v1"] = log
    return f"http://127.0.0.1:{port}/v1", process


@pytest.fixture(scope="session", autouse=True)
def _fresh_rate_limits(django_db_setup, django_db_blocker) -> None:
    """Forget rate-limit windows of an earlier run: the new test database hands out the same key ids.

    Parallel workers (pytest-xdist) each have a database of their own but share Redis: each hands out
    key ids from its own range, so that one worker's requests never fill another's key's window.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    ours = range(1, 2**63)
    if connection.vendor == "postgresql" and worker.isdigit():
        from accounts.models import ApiKey

        ours = range(int(worker) * _KEY_IDS_PER_WORKER + 1, (int(worker) + 1) * _KEY_IDS_PER_WORKER + 1)
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            table = ApiKey._meta.db_table
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, false)", [table, ours.start])
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for name in client.scan_iter("rl:key:*"):
            key_id = name.rsplit(b":", 1)[-1]
            # Only this worker's keys: another worker may be in the middle of a rate-limit test.
            if not key_id.isdigit() or int(key_id) in ours:
                client.delete(name)


_KEY_IDS_PER_WORKER = 10_000_000


@pytest.fixture(scope="session")
def routers(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[list[str]]:
    """Two independent router processes (base URLs ending in /v1) sharing the database and Redis."""
    log_dir = tmp_path_factory.mktemp("routers")
    started = []
    try:
        with django_db_blocker.unblock():
            for _ in range(2):
                started.append(start_router(log_dir, STREAM_KEEPALIVE_SECONDS="0.5", STREAM_DRAIN_SECONDS="1.5"))
        yield [url for url, _ in started]
    finally:
        for _, process in started:
            stop(process)


@pytest.fixture
def router(routers) -> str:
    return routers[0]


@dataclass
class Shop:
    """A priced model served by the emulator, and a funded customer with a key."""

    model: Model
    account_id: int
    key: str

    def balance(self, timeout: float = 10) -> Decimal:
        """The balance once nothing is in flight (a plain answer is charged right after it is sent)."""
        from accounts.models import Account

        deadline = time.monotonic() + timeout
        while True:
            account = Account.objects.get(pk=self.account_id)
            if not account.held or time.monotonic() > deadline:
                return account.balance
            time.sleep(0.02)


_shops = iter(range(1, 1_000_000))


def make_shop(
    emulator_url: str,
    *,
    funds: str = "10.00",
    prompt: str = "0.15",
    completion: str = "0.60",
    cached_prompt: str | None = None,
    request_fee: str = "0",
    rpm: int = 1000,
    routes: list[str] | None = None,
    max_output_tokens: int = 4096,
    read_timeout: str = "3",
    provider_key: str = "",
    upstream_model: str = "emulator-small",
    api: str = "openai-chat",
    cache_write_prompt: str | None = None,
) -> Shop:
    """Create a model routed to the emulator (optionally through failing routes first) and a customer."""
    from billing.services import price_set

    n = next(_shops)
    model = Model.objects.create(
        public_id=f"e2e/model-{os.getpid()}-{n}",
        name=f"E2E model {n}",
        context_length=16000,
        max_output_tokens=max_output_tokens,
    )
    for priority, base in enumerate(routes or [emulator_url]):
        provider, _ = Provider.objects.get_or_create(
            name=f"emu-{abs(hash((base, read_timeout, provider_key))) % 10**8}",
            defaults={"base_url": base, "read_timeout_s": Decimal(read_timeout), "api_key": provider_key},
        )
        Route.objects.create(model=model, provider=provider, upstream_model=upstream_model, priority=priority, api=api)
    price_set(
        model_id=model.pk,
        prompt=prompt,
        completion=completion,
        cached_prompt=cached_prompt,
        cache_write_prompt=cache_write_prompt,
        request=request_fee,
        effective_from=model.created_at - timedelta(seconds=5),
    )
    account = funded_account(funds)
    secret = key_for(account, rpm_limit=rpm)
    _fresh_windows(account.pk)
    return Shop(model=model, account_id=account.pk, key=secret)


def _fresh_windows(account_id: int) -> None:
    """Forget the rate-limit windows of a new account's ids: a database emptied by an earlier test hands
    the same key and account ids out again within the same minute, and a tight limit would count its
    predecessor's requests."""
    from accounts.models import ApiKey

    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = [f"rl:key:{pk}" for pk in ApiKey.objects.filter(account_id=account_id).values_list("pk", flat=True)]
        client.delete(f"rl:account:{account_id}", *keys)


@pytest.fixture
def shop(transactional_db, emulator_url) -> Shop:
    return make_shop(emulator_url)


def cost_of(
    prompt: int,
    completion: int,
    *,
    cached: int = 0,
    prompt_price: str = "0.15",
    completion_price: str = "0.60",
    cached_price: str | None = None,
    fee: str = "0",
) -> Decimal:
    """The documented price arithmetic: tokens × USD per 1M tokens, plus the per-request fee."""
    per_token = Decimal(1_000_000)
    return (
        Decimal(prompt - cached) * Decimal(prompt_price) / per_token
        + Decimal(cached) * Decimal(cached_price or prompt_price) / per_token
        + Decimal(completion) * Decimal(completion_price) / per_token
        + Decimal(fee)
    )


def emulated_prompt_tokens(messages: list[dict]) -> int:
    """The emulator's documented count: 3 + Σ (3 + words of each message's text)."""
    return 3 + sum(3 + len(m["content"].split()) for m in messages)


def estimated_tokens(size: int) -> int:
    """The router's documented estimate: one token per four bytes (prompt) or characters (completion)."""
    return math.ceil(size / 4)


def chat(router: str, key: str, body: dict, **kwargs) -> requests.Response:
    """POST a chat completion body with plain `requests` (the body's bytes are exactly json.dumps(body))."""
    return requests.post(
        f"{router}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=kwargs.pop("timeout", 20),
        **kwargs,
    )


def generation_settled(generation_id: str, timeout: float = 10) -> Generation:
    """Poll until the router has settled the generation (streams settle in a background reader)."""
    deadline = time.monotonic() + timeout
    while True:
        generation = Generation.objects.get(pk=generation_id)
        if generation.status != Generation.Status.PENDING:
            return generation
        if time.monotonic() > deadline:
            raise AssertionError(f"{generation_id} still pending after {timeout} s")
        time.sleep(0.05)


def assert_settled_once(generation: Generation, cost: Decimal | None) -> None:
    """One settlement: a single `charge:<id>` entry of `cost` (None: no entry, the hold released), the hold
    closed, nothing left held on the account once its other requests have settled, and its balance equal to its
    ledger's sum."""
    from accounts.models import Account
    from billing.models import Hold, LedgerEntry

    entries = list(LedgerEntry.objects.filter(reference=generation.id))
    hold = Hold.objects.get(reference=generation.id)
    if cost is None:
        assert entries == []
        assert hold.status == Hold.Status.RELEASED
        assert generation.cost == 0
    else:
        assert [(e.kind, e.idempotency_key, e.amount) for e in entries] == [
            ("charge", f"charge:{generation.id}", -cost)
        ]
        assert (hold.status, hold.ledger_entry_id) == (Hold.Status.SETTLED, entries[0].id)
        assert generation.cost == cost
    assert hold.closed_at is not None
    # The account's other requests (a test's second call, answered already) settle after their answers
    # too: wait for them, so that a hold left open still fails but one about to close does not.
    deadline = time.monotonic() + 10
    account = Account.objects.get(pk=generation.account_id)
    while account.held != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        account = Account.objects.get(pk=generation.account_id)
    assert account.held == 0
    assert account.balance == LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"]
