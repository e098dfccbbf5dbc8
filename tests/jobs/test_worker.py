"""End to end through a real Celery worker process and Redis: tasks leave the web process and run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django_celery_results.models import TaskResult

from billing.models import Hold, LedgerEntry, LowBalanceAlert, ReconciliationRun
from billing.services import hold_place, hold_settle
from billing.tasks import low_balance_check_task, reconcile_task
from mlrouter.celery import app as celery_app
from tests.factories import funded_account
from tests.jobs.conftest import expired_hold_for, make_generation

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.REDIS_URL, reason="needs REDIS_URL: the worker talks to the test process through Redis"
    ),
]

DEADLINE_S = 40


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Path]:
    """A `celery -A mlrouter worker` on the test database; yields the path of its log."""
    with django_db_blocker.unblock():
        database_url = _database_url()
    celery_app.control.purge()  # messages left in this Redis db by earlier runs would run first
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "DB_POOL_MAX_SIZE": "2",
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
    }
    command = [sys.executable, "-m", "celery", "-A", "mlrouter", "worker", "--pool", "solo", "-l", "info"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"jobs-test-{os.getpid()}@%h"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_for(condition: Callable[[], bool], log: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the worker did not finish in {DEADLINE_S}s; its log:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def test_the_worker_reconciles_and_settles_a_killed_workers_hold(worker):
    assert not celery_app.conf.task_always_eager  # .delay() below really goes through Redis
    account = funded_account("10.00")
    generation = make_generation(account, prompt_tokens=1000, completion_tokens=500)
    expired_hold_for(generation, "0.05")

    task = reconcile_task.delay(trigger="worker")

    runs = ReconciliationRun.objects.filter(trigger="worker").exclude(status="running")
    wait_for(runs.exists, worker)
    run = runs.get()
    assert run.status == ReconciliationRun.Status.FINDINGS
    assert Hold.objects.get(reference=generation.pk).status == "settled"
    assert LedgerEntry.objects.get(reference=generation.pk).amount == Decimal("-0.00045")
    # The run is also recorded as a task result, listed in admin with its outcome.
    results = TaskResult.objects.filter(task_id=task.id, status="SUCCESS")
    wait_for(results.exists, worker)
    assert (results.get().task_name, results.get().result) == ("billing.tasks.reconcile_task", str(run.pk))


def test_the_worker_creates_and_delivers_a_low_balance_alert(worker):
    account = funded_account("1.20", email="owner@worker.test")
    hold_place(account_id=account.pk, amount=Decimal("0.30"), reference="gen-1-worker")
    hold_settle(reference="gen-1-worker", cost=Decimal("0.30"))

    low_balance_check_task.delay(account.pk)

    sent = LowBalanceAlert.objects.filter(account=account, status="sent", error="")
    wait_for(sent.exists, worker)
    alert = sent.get()
    assert (alert.channel, alert.balance, alert.attempts) == ("email", Decimal("0.9"), 1)
    assert "To: owner@worker.test" in worker.read_text()
