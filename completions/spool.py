"""Settlements that PostgreSQL could not take, kept on disk and written once it answers again.

A settlement (a charge, or a release of a hold not charged) that fails because the database is
unreachable is appended to this process's spool file under SETTLEMENT_SPOOL_DIR, one JSON line,
fsynced before the caller goes on: the client has its answer, and the charge must not be lost. A
background loop replays the spool with backoff until every record is written, and a process starting
up replays what a dead predecessor left.

Exactly once: each record is the same `hold_settle` / `hold_release` call, whose effect is keyed by the
hold's reference (the charge's idempotency key is `charge:<generation id>`), so a record replayed twice
— by two processes, or after a crash between writing and forgetting it — changes nothing the second
time. Each file is held under an exclusive `flock` by the process that owns it: the process writing to
it while alive, then whichever process replays it after its owner died. A spooled reference is a
settlement still pending: reconciliation leaves its hold alone (`spooled_references`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction

from billing.services import BillingError, hold_release, hold_settle
from core.db import DATABASE_DOWN, release_db
from core.green import start_beside

from .models import Generation
from .settlement import Closing, Finished, _finish

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
# Backoff between replays of a spool the database still refuses.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
# How often a process looks for files that a dead process left, when it has nothing of its own to replay.
ORPHANS_EVERY_S = 10.0

_lock = threading.Lock()
_current: tuple[Path, IO[str]] | None = None  # this process's file being appended to
_sealed: list[tuple[Path, IO[str]]] = []  # this process's files closed for appending, waiting to be replayed
_pending = 0
_wake = threading.Event()
_loop_started = False
_files = iter(range(1, 10**9))


def spool_dir() -> Path:
    return Path(settings.SETTLEMENT_SPOOL_DIR)


def spool_pending_count() -> int:
    """Settlements this process spooled (or took over from a dead process) and has not written yet."""
    return _pending


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "$decimal" in value:
        return Decimal(value["$decimal"])
    if isinstance(value, dict) and "$datetime" in value:
        return datetime.fromisoformat(value["$datetime"])
    return value


def _record(closing: Closing) -> dict[str, Any]:
    return {
        "reference": closing.started.generation_id,
        "charge": closing.charge,
        "cost": str(closing.cost),
        "memo": closing.started.entry.public_id,
        "changes": {name: _encode(value) for name, value in closing.changes.items()},
        "spooled_at": time.time(),
    }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_own() -> tuple[Path, IO[str]]:
    folder = spool_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"settlements-{os.getpid()}-{time.time_ns()}-{next(_files)}{SUFFIX}"
    handle = path.open("a+", encoding="utf-8")
    fcntl.flock(handle, fcntl.LOCK_EX)
    _fsync_dir(folder)  # the file's name survives a crash too
    return path, handle


def settlement_spool(closing: Closing, exc: BaseException) -> None:
    """Keep a settlement the database refused on disk (durably) and wake the replay loop."""
    global _current, _pending
    line = json.dumps(_record(closing), separators=(",", ":")) + "\n"
    with _lock:
        if _current is None:
            _current = _open_own()
        handle = _current[1]
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
        _pending += 1
    log.error(
        "settling %s failed (%s: the database is unreachable); spooled, it will be written when the database answers",
        closing.started.generation_id,
        type(exc).__name__,
    )
    replay_loop_start()
    _wake.set()


def commit_or_spool(closing: Closing) -> Finished:
    """`closing.commit()`, or, when PostgreSQL is unreachable, the settlement spooled for replay.

    Either way the result is what the client is told it was charged.
    """
    try:
        return closing.commit()
    except DATABASE_DOWN as exc:
        release_db()  # the broken connection, if this thread had one
        settlement_spool(closing, exc)
        return closing.finished


def record_apply(record: dict[str, Any]) -> None:
    """Write one spooled settlement; replaying it again changes nothing (raises DATABASE_DOWN while down)."""
    reference = record["reference"]
    changes = {name: _decode(value) for name, value in record["changes"].items()}
    if not record["charge"]:
        with transaction.atomic():
            if hold_release(reference=reference, reason=changes.get("error", "")[:200] or "not charged"):
                Generation.objects.filter(pk=reference).update(**changes)
        return
    hold_settle(
        reference=reference, cost=Decimal(record["cost"]), memo=record["memo"], also=_finish(reference, changes)
    )


def _replay_file(handle: IO[str], path: Path) -> bool:
    """Write every record of a locked spool file; True when all are written (the file may go)."""
    handle.seek(0)
    for number, line in enumerate(handle, 1):
        if not line.endswith("\n"):
            break  # a record cut short by a crash was never acknowledged to anyone: its hold stays open
        try:
            record = json.loads(line)
            record_apply(record)
        except DATABASE_DOWN:
            release_db()
            return False
        except (BillingError, ObjectDoesNotExist, ValueError, KeyError, TypeError):
            # Not retryable: the hold is gone or the line is not ours. Reconciliation reports the generation.
            log.exception("spooled settlement %s:%d cannot be written; left to reconciliation", path.name, number)
    release_db()
    return True


def _drop(path: Path, handle: IO[str]) -> None:
    path.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    handle.close()  # releases the lock


def _count(handle: IO[str]) -> int:
    handle.seek(0)
    return sum(1 for line in handle if line.endswith("\n"))


def _orphans() -> list[tuple[Path, IO[str]]]:
    """Other processes' files whose owner is gone (their lock is free), each now locked by this process."""
    folder = spool_dir()
    if not folder.is_dir():
        return []
    own = {p for p, _ in _sealed} | ({_current[0]} if _current else set())
    taken = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        if path in own:
            continue
        try:
            handle = path.open("r", encoding="utf-8")
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Replayed and removed by another process between our open and our lock: nothing left.
            if os.fstat(handle.fileno()).st_ino != path.stat().st_ino:
                raise FileNotFoundError(path)
        except (BlockingIOError, FileNotFoundError):
            handle.close()
            continue
        taken.append((path, handle))
    return taken


def spool_replay(*, orphans: bool = True) -> bool:
    """Replay this process's spool (and dead processes' files); True when nothing is left to write."""
    global _current, _pending
    with _lock:
        if _current is not None:
            _sealed.append(_current)
            _current = None
    done = True
    for path, handle in list(_sealed):
        count = _count(handle)
        if not _replay_file(handle, path):
            done = False
            break
        with _lock:
            _sealed.remove((path, handle))
            _pending -= count
        _drop(path, handle)
        log.warning("the database answers again: %d spooled settlement(s) of %s written", count, path.name)
    if not orphans or not done:
        return done
    for path, handle in _orphans():
        count = _count(handle)
        if _replay_file(handle, path):
            _drop(path, handle)
            log.warning("%d spooled settlement(s) left by a stopped process written (%s)", count, path.name)
        else:
            handle.close()
            done = False
    return done


def _loop() -> None:
    delay = RETRY_FIRST_S
    last_orphans = 0.0
    while True:
        try:
            look = time.monotonic() - last_orphans >= ORPHANS_EVERY_S
            if look:
                last_orphans = time.monotonic()
            done = spool_replay(orphans=look)
        except Exception:
            log.exception("replaying the settlement spool failed")
            done = False
        if done and not _sealed and _current is None:
            delay = RETRY_FIRST_S
            _wake.wait(ORPHANS_EVERY_S)
        else:
            _wake.wait(delay)
            delay = min(delay * 2, RETRY_MAX_S)
        _wake.clear()


def replay_loop_start() -> None:
    """Start this process's replay loop (once): at worker start, and at the first spooled settlement."""
    global _loop_started
    with _lock:
        if _loop_started:
            return
        _loop_started = True
    start_beside(_loop, name="settlement-spool")


def spooled_references() -> set[str]:
    """The generation ids with a settlement waiting in any spool file (for reconciliation: still pending)."""
    folder = spool_dir()
    found: set[str] = set()
    if not folder.is_dir():
        return found
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            try:
                found.add(json.loads(line)["reference"])
            except (ValueError, KeyError, TypeError):
                continue
    return found
