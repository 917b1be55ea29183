"""Fills of an open file's local copy from its object: ranged GETs whose bodies are written
into the sparse local file piece by piece as they arrive, on a shared pool.

A reader waits for its own bytes only (the first piece of a GET that starts where it reads),
not for a whole range, while the rest of the range keeps arriving behind it; and memory
holds one socket read per GET in flight, never a range, whatever its size. Readers and fills
meet on one condition (the open file's lock): a fill stores each piece under it and wakes
the readers, who look again at what the local file holds.

At most ``most`` fills of a file are sent at once: fills started ahead of need (read-ahead,
the region around a random miss) beyond that wait here for one to end, while a fill a
reader waits for is sent at once. A server answers a new GET later the more it is sending
(one node, eight streams of 8 MiB: 100 to 225 ms to a random miss's first byte, against
10 to 25 ms with two), and the reads wait for those first bytes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .ranges import RangeSet, without

__all__ = ["Fill", "Fills", "FillStopped"]

# (start, length, write(offset, piece)) -> bytes the object had there: one streamed ranged GET
GetInto = Callable[[int, int, Callable[[int, memoryview], None]], int]


class FillStopped(Exception):
    """A fill nobody wants any more ends at its next piece (its connection is closed)."""


@dataclass(eq=False)
class Fill:
    start: int
    end: int
    ahead: bool  # started before anyone asked for its bytes (read-ahead, a region around a miss)
    pos: int = -1  # the bytes before it have arrived
    sent: bool = False  # handed to the pool (not waiting for the fills ahead of it to end)
    running: bool = False  # taken up by a pool thread
    done: bool = False
    stopped: bool = False
    short: bool = False  # the object ended before ``end``: it is shorter than when opened
    error: Exception | None = None

    def __post_init__(self) -> None:
        self.pos = self.start

    def brings(self, offset: int) -> bool:
        """Whether the byte at ``offset`` is still to come from this fill."""
        return not self.done and not self.stopped and self.pos <= offset < self.end


class Fills:
    """The fills of one open file in flight. ``store(offset, piece)`` is called with the lock
    held; it writes what the local file does not hold yet (never over a local change)."""

    def __init__(self, lock: threading.RLock, pool: ThreadPoolExecutor | None, get_into: GetInto,
                 store: Callable[[int, memoryview], None], most: int) -> None:
        self.cond = threading.Condition(lock)
        self._pool = pool
        self._get_into = get_into
        self._store = store
        self._most = most
        self.active: list[Fill] = []  # in order of start; those not sent are sent in that order

    def covering(self, offset: int) -> Fill | None:
        return next((f for f in self.active if f.brings(offset)), None)

    def ahead_count(self) -> int:
        return sum(1 for f in self.active if f.ahead and not f.stopped)

    def reach(self, offset: int, present: RangeSet) -> int:
        """How far from ``offset`` the bytes are in the local file or on their way, without a gap."""
        pos = offset
        for _ in range(2 * len(self.active) + 2):
            pos = present.extent(pos)
            fill = self.covering(pos)
            if fill is None:
                break
            pos = fill.end
        return pos

    def start(self, start: int, end: int, present: RangeSet, piece: int, ahead: bool) -> list[Fill]:
        """Fills for what [start, end) lacks that no fill brings, in GETs of at most ``piece``."""
        wanted = present.missing(start, end)
        for fill in self.active:
            if not fill.done and not fill.stopped:
                wanted = without(wanted, fill.pos, fill.end)
        started = [Fill(pos, min(pos + piece, gap_end), ahead)
                   for gap_start, gap_end in wanted for pos in range(gap_start, gap_end, piece)]
        for fill in started:
            self.active.append(fill)
            if not ahead or self._pool is None:
                self._send(fill)
        self._send_waiting()
        return started

    def _send(self, fill: Fill) -> None:
        fill.sent = True
        if self._pool is None:
            self._run(fill)
        else:
            self._pool.submit(self._run, fill)

    def _send_waiting(self) -> None:
        """Send the fills that wait, oldest first, while fewer than ``most`` are out."""
        out = sum(1 for f in self.active if f.sent)
        for fill in [f for f in self.active if not f.sent][:max(self._most - out, 0)]:
            self._send(fill)

    def hurry(self, fill: Fill) -> None:
        """A reader waits for ``fill``: it is sent now if it was waiting for others to end."""
        if not fill.sent and not fill.done:
            self._send(fill)

    def stop(self, which: Callable[[Fill], bool]) -> None:
        """Stop the fills ``which`` picks (the caller holds the lock): one still waiting (here
        or for a pool thread) is dropped at once, a running one at its next piece."""
        for fill in list(self.active):
            if which(fill):
                fill.stopped = True
                if not fill.running:
                    fill.done = True
                    self.active.remove(fill)
        self.cond.notify_all()

    def stop_all(self, timeout_s: float) -> bool:
        """Stop every fill and wait until none is running (the caller holds the lock); False
        if some were still running after ``timeout_s``."""
        self.stop(lambda _: True)
        return self.cond.wait_for(lambda: not self.active, timeout_s)

    def _run(self, fill: Fill) -> None:
        def write(offset: int, piece: memoryview) -> None:
            with self.cond:
                if fill.stopped:
                    raise FillStopped
                self._store(offset, piece)
                fill.pos = max(fill.pos, offset + len(piece))
                self.cond.notify_all()

        with self.cond:
            if fill.done:  # stopped before it started
                return
            fill.running = True
        try:
            got = self._get_into(fill.start, fill.end - fill.start, write)
            fill.short = got < fill.end - fill.start
        except FillStopped:
            pass
        except Exception as exc:  # noqa: BLE001 - kept for the readers waiting on it, who raise it
            fill.error = exc
        finally:
            with self.cond:
                fill.done = True
                self.active.remove(fill)
                self._send_waiting()
                self.cond.notify_all()

