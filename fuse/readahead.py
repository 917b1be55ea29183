"""Where one file handle reads, and so what to fetch for it before it asks: the plan of the
read-ahead, for ``OpenFile`` to carry out (its fills stream into the local file: no window is
held in memory, so memory stays bounded whatever the file size and however far ahead).

A read that continues the handle's last one (or lands a little before it: the kernel hands a
sequential reader's requests to several threads, so they may arrive slightly out of order)
is sequential: the distance kept fetched ahead of it doubles, from ``MIN_FETCH`` up to
``AHEAD`` times the largest fill. A read elsewhere is random: the distance starts over, and
the miss brings the file's region around it (``MissSize``), more at each miss."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["ReadAhead", "Plan", "MissSize", "MIN_FETCH", "AHEAD"]

MIN_FETCH = 128 * 1024
AHEAD = 4  # fills in flight ahead of a sequential reader: their latencies overlap
SLACK = 4 * MIN_FETCH  # how far past the last read a read may start and still be sequential
BEHIND = 8 * MIN_FETCH  # how far before it (requests of the kernel's read-ahead, out of order)
MIN_AROUND = 256 * 1024  # the region around a random miss, at first
# Up to 32 MiB: a file read at random again and again is brought in whole sooner (A/B, 1000
# random 4 KiB reads of 256 MiB: 8 MiB regions 107 GETs, 0.7 to 1.4 s; 32 MiB, 88 GETs, 0.6 to
# 1.1 s). A new miss drops what earlier regions have not begun, which bounds what a large file
# read at random brings per miss to the fills already running.
MAX_AROUND = 32 * 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """What a read needs: [start, end) present or on its way (``start`` first)."""

    start: int
    end: int
    piece: int  # in fills of at most this size, in parallel
    sequential: bool


class MissSize:
    """How much of a file a random miss brings, shared by the file's handles: twice as much at
    each miss, from ``MIN_AROUND`` up to ``MAX_AROUND``. A file read at a few places (a
    header, an index, a seek in a video) costs a few small GETs; one read at random again and
    again comes in large regions, fetched behind the reads that missed (which wait only for
    their own bytes), so that its next reads find them here."""

    def __init__(self) -> None:
        self.size = MIN_AROUND
        self._lock = threading.Lock()

    def around(self, offset: int, limit: int, most: int = MAX_AROUND) -> tuple[int, int]:
        """The aligned region of the object (up to ``limit``, at most ``most`` bytes) to bring
        for a miss at ``offset``."""
        with self._lock:
            size = self.size
            self.size = min(size * 2, MAX_AROUND)
            while size > max(most, MIN_AROUND):
                size //= 2
        start = offset - offset % size
        return start, min(start + size, limit)


class ReadAhead:
    def __init__(self, max_fill: int) -> None:
        self.max_fill = max(max_fill, MIN_FETCH)
        self._next = -1  # where a sequential read continues; -1: nothing read yet
        self._distance = MIN_FETCH
        self._lock = threading.Lock()

    def seed(self, start: int, length: int) -> None:
        """Bytes the open already fetched: a read right after them is sequential."""
        with self._lock:
            self._next = start + length

    def _sequential(self, offset: int) -> bool:
        return self._next >= 0 and self._next - BEHIND <= offset <= self._next + SLACK

    def plan(self, offset: int, size: int, end: int) -> Plan:
        """The read of ``size`` bytes at ``offset``, of an object of which bytes up to ``end``
        are wanted: what should be present or coming for it."""
        with self._lock:
            sequential = self._sequential(offset)
            if sequential:
                self._distance = min(self._distance * 2, AHEAD * self.max_fill)
            else:
                self._distance = MIN_FETCH
            self._next = max(self._next, offset + size) if sequential else offset + size
            # a sequential reader's pieces grow with the distance; a random miss's region comes
            # in the largest (it is in flight behind the read: its size costs no wait)
            piece = max(min(self._distance // 2, self.max_fill), MIN_FETCH) if sequential else self.max_fill
            return Plan(offset, min(offset + size + (self._distance if sequential else 0), end), piece, sequential)
