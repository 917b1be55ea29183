"""The metadata writer's batching policy: lone writers are never kept waiting, writes that
overlap are gathered into one commit."""

from __future__ import annotations

from edgestore.store.groupcommit import Batcher

HOUR = 3600.0  # a window no test could sit out: a wrong linger would show as a hang


def test_a_lone_writer_writing_back_to_back_is_committed_at_once() -> None:
    batcher: Batcher[int] = Batcher(window_s=HOUR)
    for i in range(20):
        assert batcher.add(i)               # nothing scheduled: the caller schedules a take
        assert not batcher.lingers()        # it never found another write in flight
        assert batcher.take() == [i]
        batcher.done(1)


def test_overlapping_writes_share_one_commit() -> None:
    batcher: Batcher[str] = Batcher(window_s=HOUR, max_batch=3)
    assert batcher.add("a")
    assert not batcher.add("b")             # a take is scheduled already: b joins it
    assert batcher.lingers()                # b arrived while a was in flight
    assert not batcher.add("c")
    assert not batcher.lingers()            # the batch is full: commit now
    assert batcher.take() == ["a", "b", "c"]
    batcher.done(3)
    assert batcher.add("d")                 # the next write schedules the next take


def test_writes_further_apart_than_the_window_do_not_linger() -> None:
    batcher: Batcher[int] = Batcher(window_s=0.0)
    assert batcher.add(1)
    assert not batcher.add(2)
    assert not batcher.lingers()
    assert batcher.take() == [1, 2]


def test_a_write_that_must_not_wait_ends_the_linger() -> None:
    batcher: Batcher[str] = Batcher(window_s=HOUR)
    assert batcher.add("record")
    assert not batcher.add("another record")
    assert batcher.lingers()
    assert not batcher.add("block reference", patient=False)
    assert not batcher.lingers()
    assert batcher.take() == ["record", "another record", "block reference"]
    batcher.done(3)
    assert batcher.add("record")
    assert not batcher.add("record")
    assert batcher.lingers()                # the impatient write left with its batch
