"""When the metadata writer commits: gathering writes that arrive close together into one
transaction.

A commit writes every B-tree page it touched (the table leaf, each index leaf, the
partition digest, the database header) to the WAL and again to the database at
checkpoint, whether it carries one record or twenty. For a 4 KiB inline object those
shared pages, not the payload, are most of the bytes an SD card takes per write, so a
commit should carry as many writes as are about to arrive anyway.

Writes that arrive during a commit join the next one for free. Beyond that the writer
lingers only when writes overlap (of the recent ones, some arrived while another was still
queued or committing: several clients at once) and arrive faster than the window. It waits
for the writers it has lately seen at once (the most writes in flight together, a memory
that fades): each client waits for its own commit before it writes again, so once that
many are queued nobody else is coming. It also stops at a lull (no write for twice the
recent mean gap) and at the window after the batch's first write. A lone writer, even one
writing back to back, is committed at once; two clients make batches of two without
waiting for a third. Only writes that say they may wait are kept waiting: a block
reference follows a 1 MiB block file whose own write dwarfs the pages its commit costs,
and a large PUT's throughput would suffer.
"""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")

# The weight of the newest sample in the running means (gaps, overlap).
_WEIGHT = 0.25
# How fast the remembered number of writers fades, per commit: clients that stopped writing
# are forgotten within a few dozen commits.
_CROWD_DECAY = 0.9
# The running share of writes that found another in flight above which the writer lingers:
# exactly 0 for one client writing back to back, which waiting could only slow down.
_MIN_OVERLAP = 0.1


class Batcher(Generic[T]):
    """A queue of writes for one writer thread: `add` from any thread, `take` on the writer."""

    def __init__(self, window_s: float, max_batch: int = 256) -> None:
        self.window_s = window_s
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._items: list[T] = []
        self._scheduled = False
        self._first_at = 0.0          # when the oldest queued write arrived
        self._last_at = float("-inf")  # when the newest write arrived
        self._gap = window_s          # running mean gap between writes, capped at the window
        self._in_flight = 0           # queued or being committed
        self._overlap = 0.0           # running mean share of writes that found another in flight
        self._impatient = 0           # queued writes that must not wait
        self._crowd = 1.0             # most writes recently in flight at once, fading

    def add(self, item: T, patient: bool = True) -> bool:
        """Queue a write; True if the caller must schedule a `take` on the writer thread
        (none is scheduled yet). An impatient write ends any lingering: its batch commits
        as soon as the writer is free."""
        now = time.monotonic()
        with self._cond:
            self._impatient += not patient
            gap = min(now - self._last_at, self.window_s)
            self._gap += (gap - self._gap) * _WEIGHT
            self._overlap += ((self._in_flight > 0) - self._overlap) * _WEIGHT
            self._in_flight += 1
            self._crowd = max(self._crowd, float(self._in_flight))
            self._last_at = now
            if not self._items:
                self._first_at = now
            self._items.append(item)
            self._cond.notify()
            schedule = not self._scheduled
            self._scheduled = True
        return schedule

    def take(self) -> list[T]:
        """Everything queued, after lingering for more while writes arrive close together."""
        with self._cond:
            while self._lingers():
                now = time.monotonic()
                deadline = min(self._first_at + self.window_s, self._last_at + 2 * self._gap)
                if now >= deadline:
                    break
                self._cond.wait(deadline - now)
            batch, self._items = self._items, []
            self._scheduled = False
            self._impatient = 0
            self._crowd = max(1.0, self._crowd * _CROWD_DECAY)
        return batch

    def lingers(self) -> bool:
        """Would `take` now wait for more writes (at most the window)?"""
        with self._cond:
            return self._lingers()

    def _lingers(self) -> bool:
        return (not self._impatient and len(self._items) < min(self.max_batch, round(self._crowd))
                and self._gap < self.window_s and self._overlap >= _MIN_OVERLAP)

    def done(self, count: int) -> None:
        """`count` writes from a `take` are committed (or failed): no longer in flight."""
        with self._cond:
            self._in_flight -= count
