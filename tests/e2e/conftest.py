"""Live servers for end-to-end tests: the upstream emulator and ML Router under gunicorn + gevent.

The router processes use the test database (tests that talk to them must commit their data:
`transactional_db`) and the test Redis, exactly as production would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from completions.models import Model, Provider, Route
from tests.factories import funded_account, key_for

ROOT = Path(settings.BASE_DIR)


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
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
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


def start_router(log_dir: Path, **env_overrides: str) -> tuple[str, subprocess.Popen]:
    """Start one gunicorn (one gevent worker) serving ML Router on a free port."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "false",
        "DB_POOL_MAX_SIZE": "4",
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
    return f"http://127.0.0.1:{port}/v1", process


@pytest.fixture(scope="session")
def routers(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[list[str]]:
    """Two independent router processes (base URLs ending in /v1) sharing the database and Redis."""
    log_dir = tmp_path_factory.mktemp("routers")
    started = []
    try:
        with django_db_blocker.unblock():
            for _ in range(2):
                started.append(start_router(log_dir, STREAM_KEEPALIVE_SECONDS="0.5", STREAM_DRAIN_SECONDS="5"))
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

    def balance(self) -> Decimal:
        from accounts.models import Account

        return Account.objects.get(pk=self.account_id).balance


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
            name=f"emu-{abs(hash(base)) % 10**8}", defaults={"base_url": base, "read_timeout_s": Decimal("3")}
        )
        Route.objects.create(model=model, provider=provider, upstream_model="emulator-small", priority=priority)
    price_set(
        model_id=model.pk,
        prompt=prompt,
        completion=completion,
        cached_prompt=cached_prompt,
        request=request_fee,
        effective_from=model.created_at - timedelta(seconds=5),
    )
    account = funded_account(funds)
    return Shop(model=model, account_id=account.pk, key=key_for(account, rpm_limit=rpm))


@pytest.fixture
def shop(transactional_db, emulator_url) -> Shop:
    return make_shop(emulator_url)
