"""Append-only segment files that hold the bodies of small objects, beside the metadata
database of one device.

Kept in the SQLite row, a 4 KiB body is written twice (the WAL, then the checkpoint) and
drags overflow pages along; appended here it is written once, and the row keeps only where
it is (segment, offset, length) and its checksum. The metadata writer thread is the only
appender: it appends the bodies of a batch, `sync`s, and only then commits the rows that
name them, so a row never names bytes that are not durable. A crash leaves at most
unreferenced bytes at a segment's tail.

A segment is sealed (never appended to again) once it reaches `max_bytes` and at every
open: the next append starts a new file. Segments whose bodies are mostly dead are
compacted (repair/compaction.py) and unlinked. Files are named by their id, zero-padded.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

from edgestore.store.blocks import fsync_dir

__all__ = ["SegmentStore", "SegmentSyncError", "SEGMENT_MAX_BYTES"]

# Small enough that compacting a mostly-dead one copies little, large enough that a device
# holds few files.
SEGMENT_MAX_BYTES = 8 * 1024 * 1024
# Read handles kept open (least recently used go first).
_OPEN_FILES = 64


class SegmentSyncError(Exception):
    """A segment's fdatasync (or its directory's fsync) failed. Not an OSError on purpose:
    the writer must fail the whole batch with it, not one write. Linux reports a failed
    writeback once and then forgets the pages, so a second fdatasync that returns 0 proves
    nothing about the bytes appended before it."""


class SegmentStore:
    def __init__(self, path: Path, max_bytes: int = SEGMENT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            fsync_dir(path.parent)   # or a power cut may forget the directory, files and all
        self._active: int | None = None   # id of the segment being appended to
        self._fd = -1                     # its append handle
        self._size = 0                    # its length
        self._dirty = False               # appended since the last sync
        self._new_file = False            # created since the last sync: the directory needs one too
        self._next_id = 1 + max(self.ids_on_disk(), default=0)
        # Read handles, used and closed only under the lock: none is closed under a pread.
        self._readers: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.Lock()

    def file(self, seg: int) -> Path:
        return self.path / f"{seg:010d}.seg"

    def ids_on_disk(self) -> list[int]:
        return sorted(int(p.stem) for p in self.path.glob("*.seg") if p.stem.isdigit())

    @property
    def active(self) -> int | None:
        return self._active

    def start_after(self, seg: int) -> None:
        """New segments get ids above `seg` (the highest the database or the disk knows)."""
        self._next_id = max(self._next_id, seg + 1)

    def forget_unknown(self, known: Iterable[int]) -> None:
        """Unlink files the database names no segment for: created just before a crash,
        before the commit that would have named them."""
        keep = set(known)
        for seg in self.ids_on_disk():
            if seg not in keep:
                self.file(seg).unlink(missing_ok=True)

    # -- the writer thread -------------------------------------------------------------

    def append(self, body: bytes) -> tuple[int, int]:
        """Write a body at the active segment's end (not yet durable: `sync` makes it so);
        its (segment, offset)."""
        if self._active is None or self._size + len(body) > self.max_bytes and self._size > 0:
            self._roll()
        assert self._active is not None
        offset = self._size
        if os.pwrite(self._fd, body, offset) != len(body):   # a full disk writes short
            raise OSError(errno.ENOSPC, f"{self.file(self._active)}: short write")
        self._size += len(body)
        self._dirty = True
        return self._active, offset

    def _seal(self) -> tuple[int, bool]:
        """No segment active any more: (its append handle, still open, or -1; whether it
        holds appends not yet synced). The next append starts a new file."""
        sealed = self._fd, self._dirty
        self._fd, self._active, self._size, self._dirty = -1, None, 0, False
        return sealed

    def _roll(self) -> None:
        if self._fd >= 0:
            fd, dirty = self._seal()
            try:
                if dirty:   # this batch's bodies in it must be as durable as the rest
                    os.fdatasync(fd)
            except OSError as exc:
                raise SegmentSyncError(f"{self.path}: {exc}") from exc
            finally:
                os.close(fd)
        # The state names a new segment only once its file is open: a failed open (a full
        # disk, no fds left) leaves no segment active, and the next append tries again.
        seg, self._next_id = self._next_id, self._next_id + 1
        self._fd = os.open(self.file(seg), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._active, self._size = seg, 0
        self._new_file = True

    def sync(self) -> None:
        """Make every append so far durable, before the commit of the rows that name them.
        SegmentSyncError if that fails: the batch must not commit, and the active segment
        is abandoned (sealed), so no later commit relies on its failed bytes."""
        try:
            if self._dirty:
                os.fdatasync(self._fd)
                self._dirty = False
            if self._new_file:
                fsync_dir(self.path)
                self._new_file = False
        except OSError as exc:
            fd, _ = self._seal()
            if fd >= 0:
                os.close(fd)
            raise SegmentSyncError(f"{self.path}: {exc}") from exc

    def unlink(self, seg: int) -> None:
        """Remove a sealed segment no row names any more (a reader that fetched a row just
        before it was repointed finds the file gone and fetches the row again). Never the
        active one: appends would go on into an unlinked file."""
        if self._active is not None and seg >= self._active:
            raise ValueError(f"{self.file(seg)} is not sealed")
        with self._lock:
            fd = self._readers.pop(seg, None)
            if fd is not None:
                os.close(fd)
            self.file(seg).unlink(missing_ok=True)

    def size(self, seg: int) -> int:
        if seg == self._active:
            return self._size
        try:
            return self.file(seg).stat().st_size
        except FileNotFoundError:
            return 0

    # -- any thread --------------------------------------------------------------------

    def read(self, seg: int, offset: int, length: int) -> bytes:
        """A body's bytes; short if the file is shorter (the checksum then fails).
        FileNotFoundError if the segment is gone."""
        with self._lock:
            fd = self._readers.pop(seg, None)
            if fd is None:
                fd = os.open(self.file(seg), os.O_RDONLY)
                while len(self._readers) >= _OPEN_FILES:
                    os.close(self._readers.popitem(last=False)[1])
            self._readers[seg] = fd
            return os.pread(fd, length, offset)

    def close(self) -> None:
        with self._lock:
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

