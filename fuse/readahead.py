"""Reads of a remote object for one open file handle: ranged GETs, growing into a read-ahead
window while the reads are sequential and falling back to small ranges for random access.
At most one window is held per handle, so memory stays bounded whatever the file size."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["ReadAhead"]

MIN_FETCH = 128 * 1024

Fetch = Callable[[int, int], bytes]  # (start, length) -> bytes of the object


class ReadAhead:
    def __init__(self, max_window: int) -> None:
        self.max_window = max(max_window, MIN_FETCH)
        self._window = MIN_FETCH
        self._buf = b""
        self._buf_start = 0
        self._next = -1  # where a sequential reader reads next
        self._lock = threading.Lock()

    def drop(self) -> None:
        with self._lock:
            self._buf, self._next = b"", -1

    def read(self, fetch: Fetch, offset: int, size: int, end: int) -> bytes:
        """``size`` bytes at ``offset`` of an object of which bytes up to ``end`` are wanted."""
        size = min(size, end - offset)
        if size <= 0:
            return b""
        with self._lock:
            out = bytearray()
            pos = offset
            while pos < offset + size:
                rel = pos - self._buf_start
                if 0 <= rel < len(self._buf):
                    piece = self._buf[rel:rel + offset + size - pos]
                else:
                    sequential = pos == self._next or 0 <= rel <= len(self._buf)
                    self._window = min(self._window * 2, self.max_window) if sequential else MIN_FETCH
                    want = min(max(self._window, offset + size - pos), end - pos)
                    self._buf, self._buf_start = fetch(pos, want), pos
                    piece = self._buf[:offset + size - pos]
                    if not piece:  # the object is shorter than we were told: a short read
                        break
                out += piece
                pos += len(piece)
            self._next = pos
            return bytes(out)
