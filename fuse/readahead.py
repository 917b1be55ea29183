"""Reads of a remote object for one open file handle: ranged GETs, growing into a read-ahead
window while the reads are sequential and falling back to small ranges for random access.
While a reader goes sequentially, the ``AHEAD`` windows after the one it reads are fetched in
the background (on a shared pool), at once, so the next reads find them arrived. At most
``AHEAD`` + 1 windows are held per handle, so memory stays bounded whatever the file size."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["ReadAhead"]

MIN_FETCH = 128 * 1024
AHEAD = 2  # windows in flight ahead of a sequential reader: one GET's latency hides the other's

Fetch = Callable[[int, int], bytes]  # (start, length) -> bytes of the object


class ReadAhead:
    def __init__(self, max_window: int, pool: ThreadPoolExecutor | None = None) -> None:
        self.max_window = max(max_window, MIN_FETCH)
        self._pool = pool
        self._window = MIN_FETCH
        self._buf = b""
        self._buf_start = 0
        self._next = -1  # where a sequential reader reads next
        self._ahead: list[tuple[int, int, Future[bytes]]] = []  # (start, length, fetch) of the next windows
        self._lock = threading.Lock()

    def drop(self) -> None:
        with self._lock:
            self._buf, self._next, self._ahead = b"", -1, []

    def seed(self, start: int, data: bytes) -> None:
        """Bytes of the object already fetched (with the open), as if read ahead."""
        with self._lock:
            self._buf, self._buf_start, self._next = data, start, start

    def sequential(self, offset: int) -> bool:
        """Whether a read at ``offset`` continues this handle's reads (or its seeded start)."""
        with self._lock:
            return offset == self._next or 0 <= offset - self._buf_start <= len(self._buf)

    def _take_ahead(self, pos: int, want: int) -> bytes | None:
        """The next background window, if it starts at ``pos`` and is no shorter than wanted
        (else the reader went elsewhere, and the windows fetched ahead are dropped)."""
        if not self._ahead or self._ahead[0][0] != pos or self._ahead[0][1] < want:
            self._ahead = []
            return None
        ahead = self._ahead.pop(0)
        try:
            return ahead[2].result()
        except Exception:  # noqa: BLE001 - fetched again in the foreground, where its error is raised
            return None

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
                    if not sequential:
                        self._ahead = []
                    data = self._take_ahead(pos, offset + size - pos) if sequential else None
                    self._buf, self._buf_start = data if data is not None else fetch(pos, want), pos
                    piece = self._buf[:offset + size - pos]
                    if not piece:  # the object is shorter than we were told: a short read
                        break
                    following = self._ahead[-1][0] + self._ahead[-1][1] if self._ahead else pos + len(self._buf)
                    while (sequential and self._pool is not None and following < end and len(self._ahead) < AHEAD
                           and self._window >= self.max_window):
                        length = min(self._window, end - following)
                        self._ahead.append((following, length, self._pool.submit(fetch, following, length)))
                        following += length
                out += piece
                pos += len(piece)
            self._next = pos
            return bytes(out)
