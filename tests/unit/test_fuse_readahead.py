"""The mount's read-ahead of one handle: whatever the order of reads, they answer the object's
bytes; a sequential reader whose requests arrive slightly out of order (as the kernel's
read-ahead hands them to several threads) keeps its full windows."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from edgestore.fuse.readahead import MIN_FETCH, ReadAhead
from hypothesis import given, settings
from hypothesis import strategies as st

KIB = 1024
OBJECT = os.urandom(3 * 1024 * KIB)


class Counted:
    """Ranged reads of an in-memory object, counted."""

    def __init__(self, data: bytes) -> None:
        self.data, self.calls = data, 0
        self._lock = threading.Lock()

    def __call__(self, start: int, length: int) -> bytes:
        with self._lock:
            self.calls += 1
        return self.data[start:start + length]


reads = st.lists(st.tuples(st.integers(0, len(OBJECT) + 10), st.integers(1, 300 * KIB)), max_size=30)


@given(reads, st.booleans(), st.integers(0, 2 * MIN_FETCH))
@settings(deadline=None, max_examples=60)
def test_reads_in_any_order_answer_the_objects_bytes(steps: list[tuple[int, int]], pooled: bool, seed: int) -> None:
    fetch = Counted(OBJECT)
    with ThreadPoolExecutor(2) as pool:
        ahead = ReadAhead(256 * KIB, pool if pooled else None)
        ahead.seed(0, OBJECT[:seed])
        for offset, size in steps:
            assert ahead.read(fetch, offset, size, len(OBJECT)) == OBJECT[offset:offset + size]


def test_a_shorter_object_than_told_gives_a_short_read() -> None:
    fetch = Counted(OBJECT[:100 * KIB])
    ahead = ReadAhead(256 * KIB)
    assert ahead.read(fetch, 0, 128 * KIB, len(OBJECT)) == OBJECT[:100 * KIB]
    assert ahead.read(fetch, 100 * KIB, 128 * KIB, len(OBJECT)) == b""


def test_sequential_reads_slightly_out_of_order_keep_full_windows() -> None:
    size, window, piece = len(OBJECT), 256 * KIB, 32 * KIB
    offsets = list(range(0, size, piece))
    for i in range(0, len(offsets) - 1, 2):  # each pair of requests arrives swapped
        offsets[i], offsets[i + 1] = offsets[i + 1], offsets[i]
    fetch = Counted(OBJECT)
    with ThreadPoolExecutor(2) as pool:
        ahead = ReadAhead(window, pool)
        ahead.seed(0, OBJECT[:MIN_FETCH])  # as the open does
        for offset in offsets:
            assert ahead.sequential(offset)
            assert ahead.read(fetch, offset, piece, size) == OBJECT[offset:offset + piece]
    assert fetch.calls <= 1 + size // window  # a 128 KiB window after the seed, then full ones
