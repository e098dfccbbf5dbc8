"""The group-commit writer: concurrent callers share batches, each gets its own outcome."""

from __future__ import annotations

import gevent
import pytest

from core.group_commit import GroupCommit


class Recorder:
    """A batch function that doubles numbers, refuses negative ones and records each batch it ran, and in
    which green thread; each batch waits a moment, as a round trip to the database does."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.threads: list[gevent.Greenlet] = []

    def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.threads.append(gevent.getcurrent())
        gevent.sleep(0.001)
        if 13 in items:
            raise RuntimeError("the whole batch failed")
        return [ValueError(f"negative {n}") if n < 0 else 2 * n for n in items]


def _submit_all(writer: GroupCommit, items: list[int]) -> list:
    threads = [gevent.spawn(writer.submit, n) for n in items]
    gevent.joinall(threads)
    return [t.value if t.successful() else t.exception for t in threads]


def test_an_idle_writer_writes_a_single_item_at_once_in_the_callers_own_green_thread():
    recorder = Recorder()
    writer = GroupCommit(recorder, cooperative=True)
    assert writer.submit(4) == 8
    assert writer.submit(5) == 10
    assert recorder.batches == [[4], [5]]
    assert recorder.threads == [gevent.getcurrent()] * 2  # no hand-off to the writer and back
    with pytest.raises(ValueError):
        writer.submit(-1)


def test_items_queued_together_are_written_in_one_batch_each_with_its_own_outcome():
    recorder = Recorder()
    outcomes = _submit_all(GroupCommit(recorder, cooperative=True), [1, -2, 3, 4])
    # The first finds the writer idle and writes alone; the others queue while it does, then go together.
    assert recorder.batches == [[1], [-2, 3, 4]]
    assert outcomes[0] == 2 and outcomes[2:] == [6, 8]
    assert isinstance(outcomes[1], ValueError)


def test_a_batch_takes_at_most_its_limit():
    recorder = Recorder()
    outcomes = _submit_all(GroupCommit(recorder, limit=2, cooperative=True), [1, 2, 3, 4, 5])
    assert recorder.batches == [[1], [2, 3], [4, 5]]
    assert outcomes == [2, 4, 6, 8, 10]


def test_a_failed_batch_fails_each_of_its_callers_and_the_writer_carries_on():
    recorder = Recorder()
    writer = GroupCommit(recorder, limit=2, cooperative=True)
    outcomes = _submit_all(writer, [1, 13, 2, 3])
    assert outcomes[0] == 2
    assert [type(o) for o in outcomes[1:3]] == [RuntimeError, RuntimeError]
    assert outcomes[3] == 6
    assert writer.submit(3) == 6
    with pytest.raises(RuntimeError):  # written alone, its failure is its caller's alone
        writer.submit(13)
    assert writer.submit(4) == 8


def test_a_caller_killed_while_writing_its_own_item_leaves_the_queue_to_the_writer():
    recorder = Recorder()
    writer = GroupCommit(recorder, cooperative=True)
    first = gevent.spawn(writer.submit, 1)
    gevent.sleep(0)  # it writes alone, waiting on its round trip
    others = [gevent.spawn(writer.submit, n) for n in (2, 3)]
    gevent.sleep(0)  # they queue behind it
    first.kill()
    gevent.joinall(others, timeout=5)
    assert [t.value for t in others] == [4, 6]
    assert recorder.batches == [[1], [2, 3]]


def test_without_gevent_each_item_is_written_directly():
    recorder = Recorder()
    writer = GroupCommit(recorder, cooperative=False)
    assert writer.submit(1) == 2
    with pytest.raises(ValueError):
        writer.submit(-1)
    assert recorder.batches == [[1], [-1]]
