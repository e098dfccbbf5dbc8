"""The settlement spool: a charge PostgreSQL refused is kept on disk (fsynced) and written exactly once,
by its own process or, after that process died, by another; reconciliation counts it as pending."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import RequestFactory
from django.urls import resolve

from billing.models import Hold, LedgerEntry
from billing.reconciliation import reconcile_run
from completions import settlement, spool
from completions.models import Generation
from tests.e2e.conftest import Shop, assert_settled_once, make_shop

from .books import audit


@pytest.fixture
def shop(transactional_db, emulator_url) -> Shop:
    return make_shop(emulator_url)


def answer_while_the_database_is_down(shop: Shop, monkeypatch, *, stream: bool = False) -> tuple[str, object]:
    """Serve one plain answer in-process, its charge refused as an unreachable database refuses it."""
    body = {"model": shop.model.public_id, "messages": [{"role": "user", "content": "Hello there"}]}
    request = RequestFactory().post(
        "/v1/chat/completions",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {shop.key}",
    )
    response = resolve("/v1/chat/completions").func(request)
    assert response.status_code == 200

    def unreachable(**kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(settlement, "hold_settle", unreachable)
        response.close()
    return response["X-Generation-Id"], json.loads(response.content, parse_float=Decimal)["usage"]["cost"]


def spool_files() -> list[Path]:
    return sorted(Path(settings.SETTLEMENT_SPOOL_DIR).glob("*.jsonl"))


def die() -> None:
    """Forget this process's spool as a killed process would: its file stays, its lock goes."""
    for _, handle in [*spool._sealed, *([spool._current] if spool._current else [])]:
        handle.close()
    spool._sealed.clear()
    spool._current = None
    spool._pending = 0


def test_a_charge_the_database_refuses_is_spooled_durably_and_written_once_when_it_answers(shop, monkeypatch):
    generation_id, cost = answer_while_the_database_is_down(shop, monkeypatch)
    (path,) = spool_files()
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert (record["reference"], record["charge"], Decimal(record["cost"])) == (generation_id, True, cost)
    assert spool.spool_pending_count() == 1
    assert Hold.objects.get(reference=generation_id).status == Hold.Status.OPEN

    assert spool.spool_replay()
    # Charged what the client was told, once.
    assert_settled_once(Generation.objects.get(pk=generation_id), cost)
    assert Generation.objects.get(pk=generation_id).status == Generation.Status.COMPLETED
    assert (spool_files(), spool.spool_pending_count()) == ([], 0)

    # The same record replayed again (a crash between writing and forgetting it) changes nothing.
    path.write_text(json.dumps(record) + "\n")
    assert spool.spool_replay()
    assert LedgerEntry.objects.filter(reference=generation_id).count() == 1
    assert audit({generation_id: cost}) == []


def test_while_the_database_is_still_down_the_spool_is_kept_for_the_next_try(shop, monkeypatch):
    generation_id, _ = answer_while_the_database_is_down(shop, monkeypatch)

    def still_down(**kwargs):
        raise OperationalError("still refused")

    with monkeypatch.context() as patch:
        patch.setattr(spool, "hold_settle", still_down)
        assert not spool.spool_replay()
    assert len(spool_files()) == 1 and spool.spool_pending_count() == 1
    assert spool.spool_replay()
    assert LedgerEntry.objects.filter(reference=generation_id).count() == 1


def test_a_dead_processs_spool_is_written_by_another_but_a_live_processs_is_left_to_it(shop, monkeypatch):
    generation_id, _ = answer_while_the_database_is_down(shop, monkeypatch)
    die()
    (path,) = spool_files()
    # Another live process holds the file: it is its own, and left alone.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX);"
            " print('locked', flush=True);"
            " time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert spool.spool_replay()
        assert Hold.objects.get(reference=generation_id).status == Hold.Status.OPEN
    finally:
        holder.kill()
        holder.wait()
    # Its owner is gone: this process takes the file over and writes it.
    assert spool.spool_replay()
    assert Hold.objects.get(reference=generation_id).status == Hold.Status.SETTLED
    assert spool_files() == []


def test_processes_replaying_the_same_dead_spool_at_once_charge_it_once(shop, monkeypatch):
    ids = [answer_while_the_database_is_down(shop, monkeypatch)[0] for _ in range(3)]
    die()
    # Each thread opens the file on its own, so their locks exclude each other as two processes' would.
    threads = [threading.Thread(target=spool.spool_replay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for generation_id in ids:
        assert LedgerEntry.objects.filter(reference=generation_id).count() == 1
    assert spool_files() == []
    assert audit({}) == []


def test_reconciliation_counts_a_spooled_settlement_as_pending_and_leaves_its_hold(shop, monkeypatch):
    generation_id, cost = answer_while_the_database_is_down(shop, monkeypatch)
    Hold.objects.filter(reference=generation_id).update(expires_at="2000-01-01T00:00:00Z")
    run = reconcile_run(trigger="manual")
    assert (run.counts["expired_holds_spooled"], run.counts["expired_holds_released"]) == (1, 0)
    assert Hold.objects.get(reference=generation_id).status == Hold.Status.OPEN

    assert spool.spool_replay()
    assert -LedgerEntry.objects.get(reference=generation_id).amount == cost
    assert reconcile_run(trigger="manual").findings.count() == 0
