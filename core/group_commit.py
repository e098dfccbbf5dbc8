"""Group commit: many green threads' writes of one kind, run as one statement per round trip.

Under gevent each process has one writer green thread per `GroupCommit`. A caller enqueues its item and
waits for its own outcome; the writer takes everything queued while its previous batch ran (at most
`limit`) and runs the batch function once. When nothing is being written and nothing is queued, the
caller writes its one item itself, in its own green thread (no hand-off to the writer and back): there is
no timer, so batching costs no latency, and batches grow only with concurrency.

Without gevent (tests, management commands, Celery, runserver) there is no writer: `submit` runs the
batch function on the caller's one item directly.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import gevent
from gevent.event import AsyncResult, Event

from core.green import COOPERATIVE

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Run `batch` on the items queued by concurrent callers; each caller gets its own item's outcome.

    `batch(items)` returns one outcome per item, in order: a result, or an exception to raise in that
    item's caller. An exception raised by `batch` itself is raised in every caller of the batch.
    """

    def __init__(
        self,
        batch: Callable[[Sequence[T]], Sequence[R | BaseException]],
        *,
        limit: int = 64,
        name: str = "group-commit",
        cooperative: bool = COOPERATIVE,
    ) -> None:
        self.batch = batch
        self.limit = limit
        self.name = name
        self.cooperative = cooperative
        self._queue: deque[tuple[T, AsyncResult]] = deque()
        self._wake = Event()
        self._writer: gevent.Greenlet | None = None
        self._pid = 0
        self._busy = False  # a batch (the writer's, or a caller's own item) is being written

    def submit(self, item: T) -> R:
        """Write `item` with whatever else is queued, and return its result (or raise its exception)."""
        if not self.cooperative:
            return _unwrap(self.batch([item])[0])
        if self._pid != os.getpid():
            # A forked child starts without its parent's writer or queue.
            self._queue.clear()
            self._writer, self._pid, self._busy = None, os.getpid(), False
        if not self._busy and not self._queue:
            return self._write_own(item)
        result = AsyncResult()
        self._queue.append((item, result))
        self._writer_wake()
        return result.get()

    def _write_own(self, item: T) -> R:
        """Idle: the caller's item alone, in the caller's green thread; what queues meanwhile is the writer's."""
        self._busy = True
        try:
            outcomes = self.batch([item])
        finally:
            self._busy = False
            if self._queue:
                self._writer_wake()
        if len(outcomes) != 1:
            raise RuntimeError(f"{self.name}: {len(outcomes)} outcomes for 1 item")
        return _unwrap(outcomes[0])

    def _writer_wake(self) -> None:
        if self._writer is None or self._writer.dead:
            self._writer = gevent.spawn(self._write)
        self._wake.set()

    def _write(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            # A caller writing its own item wakes the writer again when it is done.
            while self._queue and not self._busy:
                taken = [self._queue.popleft() for _ in range(min(self.limit, len(self._queue)))]
                self._busy = True
                try:
                    self._run([result for _, result in taken], [item for item, _ in taken])
                finally:
                    self._busy = False

    def _run(self, results: list[AsyncResult], items: list[T]) -> None:
        try:
            outcomes = list(self.batch(items))
            if len(outcomes) != len(items):
                raise RuntimeError(f"{self.name}: {len(outcomes)} outcomes for {len(items)} items")
        except BaseException as exc:  # each caller raises it; the writer carries on
            for result in results:
                result.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for result, outcome in zip(results, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                result.set_exception(outcome)
            else:
                result.set(outcome)


def _unwrap(outcome: R | BaseException) -> R:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
