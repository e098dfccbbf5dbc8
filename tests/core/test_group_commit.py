"""The group-commit writer: concurrent callers share batches, each gets its own outcome."""

from __future__ import annotations

import gevent
import pytest

from core.group_commit import GroupCommit


class Recorder:
    """A batch function that doubles numbers, refuses negative ones and records each batch it ran."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if 13 in items:
            raise RuntimeError("the whole batch failed")
        return [ValueError(f"negative {n}") if n < 0 else 2 * n for n in items]


def _submit_all(writer: GroupCommit, items: list[int]) -> list:
    threads = [gevent.spawn(writer.submit, n) for n in items]
    gevent.joinall(threads)
    return [t.value if t.successful() else t.exception for t in threads]


def test_an_idle_writer_writes_a_single_item_at_once():
    recorder = Recorder()
    writer = GroupCommit(recorder, cooperative=True)
    assert writer.submit(4) == 8
    assert writer.submit(5) == 10
    assert recorder.batches == [[4], [5]]


def test_items_queued_together_are_written_in_one_batch_each_with_its_own_outcome():
    recorder = Recorder()
    outcomes = _submit_all(GroupCommit(recorder, cooperative=True), [1, -2, 3])
    assert recorder.batches == [[1, -2, 3]]
    assert outcomes[0] == 2 and outcomes[2] == 6
    assert isinstance(outcomes[1], ValueError)


def test_a_batch_takes_at_most_its_limit():
    recorder = Recorder()
    outcomes = _submit_all(GroupCommit(recorder, limit=2, cooperative=True), [1, 2, 3, 4, 5])
    assert recorder.batches == [[1, 2], [3, 4], [5]]
    assert outcomes == [2, 4, 6, 8, 10]


def test_a_failed_batch_fails_each_of_its_callers_and_the_writer_carries_on():
    recorder = Recorder()
    writer = GroupCommit(recorder, limit=2, cooperative=True)
    outcomes = _submit_all(writer, [13, 1, 2])
    assert [type(o) for o in outcomes[:2]] == [RuntimeError, RuntimeError]
    assert outcomes[2] == 4
    assert writer.submit(3) == 6


def test_without_gevent_each_item_is_written_directly():
    recorder = Recorder()
    writer = GroupCommit(recorder, cooperative=False)
    assert writer.submit(1) == 2
    with pytest.raises(ValueError):
        writer.submit(-1)
    assert recorder.batches == [[1], [-1]]
