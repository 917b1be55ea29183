"""Reads of a remote object for one open file handle: ranged GETs, growing into a read-ahead
window while the reads are sequential and falling back to small ranges for random access.

The handle keeps a run of adjacent windows: the one being read, the one before it (the
kernel's read-ahead hands a sequential reader's requests to several threads, so they may
arrive slightly out of order) and, once the window has grown to its full size, ``AHEAD``
windows after it, fetched in the background on a shared pool so that the next reads find
them arrived. A read anywhere in that run (or just past it) is sequential; one elsewhere
starts over small.
At most ``AHEAD`` + 2 windows are held per handle, so memory stays bounded whatever the file
size."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

__all__ = ["ReadAhead"]

MIN_FETCH = 128 * 1024
AHEAD = 2  # windows in flight ahead of a sequential reader: one GET's latency hides the other's
SLACK = 4 * MIN_FETCH  # how far past the run a read may start and still count as sequential

Fetch = Callable[[int, int], bytes]  # (start, length) -> bytes of the object


@dataclass
class _Window:
    start: int
    length: int  # asked for; the object may have had fewer bytes
    data: Future[bytes]

    @property
    def end(self) -> int:
        return self.start + self.length


def _ready(data: bytes) -> Future[bytes]:
    done: Future[bytes] = Future()
    done.set_result(data)
    return done


class ReadAhead:
    def __init__(self, max_window: int, pool: ThreadPoolExecutor | None = None) -> None:
        self.max_window = max(max_window, MIN_FETCH)
        self._pool = pool
        self._size = MIN_FETCH  # of the next window
        self._windows: list[_Window] = []  # adjacent, in order
        self._lock = threading.Lock()

    def drop(self) -> None:
        with self._lock:
            self._windows, self._size = [], MIN_FETCH

    def seed(self, start: int, data: bytes) -> None:
        """Bytes of the object already fetched (with the open), as if read ahead."""
        with self._lock:
            self._windows = [_Window(start, len(data), _ready(data))]

    def _within(self, offset: int) -> bool:
        return bool(self._windows) and self._windows[0].start <= offset <= self._windows[-1].end + SLACK

    def sequential(self, offset: int) -> bool:
        """Whether a read at ``offset`` continues this handle's reads (or its seeded start)."""
        with self._lock:
            return self._within(offset)

    def _extend(self, fetch: Fetch, end: int, background: bool, upto: int = 0) -> None:
        """One more window after the last, doubling up to the full size (and reaching ``upto``)."""
        start = self._windows[-1].end if self._windows else 0
        length = min(max(self._size, upto - start), end - start)
        self._size = min(self._size * 2, self.max_window)
        future = self._pool.submit(fetch, start, length) if background and self._pool else _ready(fetch(start, length))
        self._windows.append(_Window(start, length, future))

    def _window_at(self, fetch: Fetch, pos: int, upto: int, end: int) -> _Window:
        if not self._within(pos):  # elsewhere: start over from a small window here
            self._windows, self._size = [_Window(pos, 0, _ready(b""))], MIN_FETCH
        while self._windows[-1].end <= pos:
            self._extend(fetch, end, background=False, upto=upto)
        index = next(i for i, w in enumerate(self._windows) if w.start <= pos < w.end)
        del self._windows[:max(index - 1, 0)]  # keep the one before, for a late request
        return self._windows[min(index, 1)]

    def read(self, fetch: Fetch, offset: int, size: int, end: int) -> bytes:
        """``size`` bytes at ``offset`` of an object of which bytes up to ``end`` are wanted."""
        size = min(size, end - offset)
        if size <= 0:
            return b""
        with self._lock:
            pieces: list[bytes] = []  # a read within one window is one slice: one copy, not three
            pos = offset
            while pos < offset + size:
                window = self._window_at(fetch, pos, offset + size, end)
                try:
                    data = window.data.result()
                except Exception:  # noqa: BLE001 - fetched again in the foreground, where its error is raised
                    window.data = _ready(fetch(window.start, window.length))
                    data = window.data.result()
                piece = data[pos - window.start:offset + size - window.start]
                if not piece:  # the object is shorter than we were told: a short read
                    self._windows = []
                    break
                pieces.append(piece)
                pos += len(piece)
                if len(data) < window.length and pos >= window.start + len(data):
                    break  # short: what follows is past the object's end
            ahead = sum(1 for w in self._windows if w.start >= pos)
            while (self._pool is not None and self._windows and self._windows[-1].end < end and ahead < AHEAD
                   and self._size >= self.max_window):
                self._extend(fetch, end, background=True)
                ahead += 1
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)
