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


def test_overlapping_writes_wait_for_the_writers_lately_seen() -> None:
    batcher: Batcher[str] = Batcher(window_s=HOUR)
    assert batcher.add("a")
    assert not batcher.add("b")             # a take is scheduled already: b joins it
    assert not batcher.lingers()            # both writers seen so far are queued
    assert batcher.take() == ["a", "b"]     # ... and now committing
    assert batcher.add("c")                 # the next write schedules the next take
    assert batcher.lingers()                # a and b's writers will be back
    batcher.done(2)
    assert not batcher.add("d")
    assert batcher.lingers()
    assert not batcher.add("e")
    assert not batcher.lingers()            # as many queued as were ever in flight
    assert batcher.take() == ["c", "d", "e"]


def test_a_full_batch_commits_at_once() -> None:
    batcher: Batcher[int] = Batcher(window_s=HOUR, max_batch=2)
    assert batcher.add(1)
    assert batcher.take() == [1]
    assert batcher.add(2)
    assert batcher.lingers()
    assert not batcher.add(3)
    assert not batcher.lingers()
    assert batcher.take() == [2, 3]


def test_writes_further_apart_than_the_window_do_not_linger() -> None:
    batcher: Batcher[int] = Batcher(window_s=0.0)
    assert batcher.add(1)
    assert batcher.take() == [1]
    assert batcher.add(2)
    assert not batcher.lingers()
    assert batcher.take() == [2]


def test_a_write_that_must_not_wait_ends_the_linger() -> None:
    batcher: Batcher[str] = Batcher(window_s=HOUR)
    assert batcher.add("record")
    assert batcher.take() == ["record"]
    assert batcher.add("another record")
    assert batcher.lingers()
    assert not batcher.add("block reference", patient=False)
    assert not batcher.lingers()
    assert batcher.take() == ["another record", "block reference"]
    batcher.done(3)
    assert batcher.add("record")
    assert batcher.lingers()                # the impatient write left with its batch
