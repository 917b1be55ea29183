"""The mount's read-ahead plans and its fills of a local copy: a sequential reader's distance
ahead grows to its cap, also when the kernel's requests arrive slightly out of order, and
starts over at a random read; the region a random miss brings grows with each miss; fills
write the object's bytes where the local copy holds nothing (never over a local change),
readers wait for just their bytes, what is coming is not asked again, a stopped fill ends,
and fills started ahead of need are sent a few at a time while one a reader waits for is sent
at once."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from edgestore.fuse.fills import Fills
from edgestore.fuse.ranges import RangeSet
from edgestore.fuse.readahead import AHEAD, MAX_AROUND, MIN_AROUND, MIN_FETCH, MissSize, ReadAhead
from hypothesis import given, settings
from hypothesis import strategies as st

KIB = 1024
MIB = 1024 * KIB
OBJECT = os.urandom(3 * MIB)


def test_a_sequential_reader_reads_further_ahead_up_to_the_cap_even_out_of_order() -> None:
    ahead = ReadAhead(1 * MIB)
    ahead.seed(0, MIN_FETCH)  # as the open does
    offsets = list(range(MIN_FETCH, 64 * MIB, 128 * KIB))
    for i in range(0, len(offsets) - 1, 2):  # each pair of requests arrives swapped
        offsets[i], offsets[i + 1] = offsets[i + 1], offsets[i]
    distances = []
    for offset in offsets:
        plan = ahead.plan(offset, 128 * KIB, 1 << 40)
        assert plan.sequential
        distances.append(plan.end - offset - 128 * KIB)
    assert all(a <= b for a, b in zip(distances, distances[1:], strict=False))  # it grows...
    assert distances[0] < distances[2] < distances[-1] == AHEAD * MIB  # ...to its cap
    assert ahead.plan(offsets[-1] + 2 * AHEAD * MIB, 4 * KIB, 1 << 40).sequential is False  # a jump: random
    assert ahead.plan(0, 4 * KIB, 100).end == 100  # never past what is wanted


def test_a_random_miss_brings_more_at_each_miss_of_the_file_up_to_the_cap() -> None:
    misses = MissSize()
    sizes = []
    for i in range(12):
        offset = (i * 7919 % 101) * 100 * MIB + 5 * KIB
        start, end = misses.around(offset, 1 << 40)
        assert start <= offset < end and start % (end - start) == 0  # aligned, around the miss
        sizes.append(end - start)
    assert sizes[0] == MIN_AROUND and sizes == sorted(sizes) and sizes[-1] == MAX_AROUND
    assert misses.around(64 * MIB + 5, 64 * MIB + 9) == (64 * MIB, 64 * MIB + 9)  # never past the end
    assert misses.around(64 * MIB + 5, 1 << 40, 5 * MIB) == (64 * MIB, 68 * MIB)  # nor over ``most``


class Store:
    """A local copy in memory: what the fills write, and where a local change was made."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)
        self.present = RangeSet()

    def store(self, pos: int, piece: memoryview) -> None:
        for start, end in self.present.missing(pos, pos + len(piece)):
            self.data[start:end] = piece[start - pos:end - pos]
        self.present.add(pos, pos + len(piece))


def get_into(start: int, length: int, write: object) -> int:
    """A ranged GET of OBJECT, in 64 KiB pieces."""
    body = memoryview(OBJECT)[start:start + length]
    for pos in range(0, len(body), 64 * KIB):
        write(start + pos, body[pos:pos + 64 * KIB])  # type: ignore[operator]
    return len(body)


@given(st.lists(st.tuples(st.integers(0, len(OBJECT) - 1), st.integers(1, 600 * KIB)), max_size=20),
       st.integers(64 * KIB, MIB), st.booleans())
@settings(deadline=None, max_examples=40)
def test_fills_bring_the_objects_bytes_without_overwriting_local_changes(
        reads: list[tuple[int, int]], piece: int, pooled: bool) -> None:
    copy = Store(len(OBJECT))
    copy.data[100:200] = b"x" * 100  # a local change, made before any fill
    copy.present.add(100, 200)
    lock = threading.RLock()
    with ThreadPoolExecutor(3) as pool:
        fills = Fills(lock, pool if pooled else None, get_into, copy.store, 2)
        for offset, size in reads:
            end = min(offset + size, len(OBJECT))
            with fills.cond:
                fills.start(offset, end, copy.present, piece, ahead=False)  # what nothing brings yet
                assert fills.cond.wait_for(lambda o=offset, e=end: copy.present.covers(o, e), 30)
        with fills.cond:
            assert fills.cond.wait_for(lambda: not fills.active, 30)
    expected = bytearray(OBJECT)
    expected[100:200] = b"x" * 100
    for start, end in copy.present:
        assert copy.data[start:end] == expected[start:end]


def test_what_a_fill_brings_is_not_asked_again_and_a_stopped_fill_ends_at_its_next_piece() -> None:
    copy = Store(len(OBJECT))
    lock = threading.RLock()
    release = threading.Event()

    def slow_get_into(start: int, length: int, write: object) -> int:
        write(start, memoryview(OBJECT)[start:start + 64 * KIB])  # type: ignore[operator]
        release.wait(30)
        return get_into(start + 64 * KIB, length - 64 * KIB, write) + 64 * KIB

    with ThreadPoolExecutor(1) as pool:
        fills = Fills(lock, pool, slow_get_into, copy.store, 2)
        with fills.cond:
            (fill,) = fills.start(0, len(OBJECT), copy.present, len(OBJECT), ahead=True)
            assert fills.cond.wait_for(lambda: fill.pos > 0, 30)
            assert fills.start(0, len(OBJECT), copy.present, MIB, ahead=False) == []  # all here or coming
            assert fills.reach(0, copy.present) == len(OBJECT)
            release.set()
            assert fills.stop_all(30)
    assert fill.done and copy.present.total() == 64 * KIB


def test_fills_ahead_of_need_are_sent_a_few_at_a_time_and_one_a_reader_needs_at_once() -> None:
    copy = Store(len(OBJECT))
    lock = threading.RLock()
    release = threading.Event()
    asked: list[int] = []

    def held_get_into(start: int, length: int, write: object) -> int:
        with fills.cond:
            asked.append(start)
            fills.cond.notify_all()
        release.wait(30)
        return get_into(start, length, write)

    with ThreadPoolExecutor(8) as pool:
        fills = Fills(lock, pool, held_get_into, copy.store, 2)
        with fills.cond:
            ahead = fills.start(0, 6 * 256 * KIB, copy.present, 256 * KIB, ahead=True)
            assert fills.cond.wait_for(lambda: len(asked) == 2, 30)
            assert [f.sent for f in ahead] == [True, True, False, False, False, False]
            (needed,) = fills.start(2 * MIB, 2 * MIB + KIB, copy.present, 256 * KIB, ahead=False)
            assert needed.sent  # past the two out: at once
            fills.hurry(ahead[5])  # a reader waits for the last one
            assert [f.sent for f in ahead] == [True, True, False, False, False, True]
            assert fills.cond.wait_for(lambda: len(asked) == 4, 30)
            assert sorted(asked) == [0, 256 * KIB, 5 * 256 * KIB, 2 * MIB]
            release.set()
            assert fills.cond.wait_for(lambda: not fills.active, 30)
    assert copy.present.covers(0, 6 * 256 * KIB) and copy.present.covers(2 * MIB, 2 * MIB + KIB)
    assert len(asked) == 7 and needed.done
