"""/metrics under gunicorn with two gevent workers: every scrape adds up all workers, dead ones included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ROOT, Shop, _database_url, free_port, make_shop, stop, wait_until_up

TOKEN = "e2e-metrics-token-0123456789"


@pytest.fixture
def two_workers(transactional_db, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """ML Router under gunicorn with two workers and its metrics folder: (base URL, master, folder)."""
    port = free_port()
    folder = tmp_path / "metrics"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "false",
        "DB_POOL_MAX_SIZE": "2",
        "GUNICORN_ACCESSLOG": "",
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }
    log = tmp_path / "router.log"
    with log.open("w") as out:
        command = [sys.executable, "-m", "gunicorn", "-c", "platform/gunicorn.conf.py"]
        command += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "mlrouter.wsgi"]
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/v1/models", process, log)
        yield f"http://127.0.0.1:{port}", process, folder
    finally:
        stop(process)


def scraped(base: str, name: str, **labels: str) -> float:
    response = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def workers_of(master: subprocess.Popen) -> set[int]:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    return {int(pid) for pid in children}


def writers(folder: Path) -> set[str]:
    """The pids that wrote counter samples (one file per process: counter_<pid>.db)."""
    return {path.stem.split("_")[-1] for path in folder.glob("counter_*.db")}


def test_every_scrape_counts_both_workers_and_a_killed_workers_answers_still_count(two_workers, emulator_url: str):
    base, master, folder = two_workers
    shop: Shop = make_shop(emulator_url)
    labels = {"surface": "chat", "model": shop.model.public_id, "status": "200"}
    assert requests.get(f"{base}/metrics", timeout=10).status_code == 403  # never public

    sent = 0
    # A new connection per request: the kernel hands them to both workers, sooner or later.
    while len(writers(folder)) < 2 or sent < 4:
        assert sent < 200, "one worker served every request"
        with openai.OpenAI(base_url=f"{base}/v1", api_key=shop.key, max_retries=0, timeout=20) as client:
            client.chat.completions.create(model=shop.model.public_id, messages=[{"role": "user", "content": "hi"}])
        sent += 1

    # Whichever worker answers the scrape, it adds up both.
    for _ in range(6):
        assert scraped(base, "mlrouter_requests_total", **labels) == sent
    assert scraped(base, "mlrouter_generations_total", model=shop.model.public_id, status="completed") == sent

    before = workers_of(master)
    victim = min(before)
    assert list(folder.glob(f"gauge_live*_{victim}.db"))  # its state gauges, until it dies
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (victim in workers_of(master) or len(workers_of(master)) < 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert victim not in workers_of(master) and len(workers_of(master)) == 2

    # What the dead worker answered still counts; its live gauges are gone (child_exit).
    for _ in range(6):
        assert scraped(base, "mlrouter_requests_total", **labels) == sent
    assert not list(folder.glob(f"gauge_live*_{victim}.db"))
