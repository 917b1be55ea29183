"""Open files: one ``OpenFile`` per file open in this mount (shared by all its handles),
holding the changes in a sparse temporary file of the local cache until they are uploaded on
flush, fsync or the last release.

What the temporary file holds is tracked as byte ranges (``present``). Bytes outside them are
the object's as it was when opened (below ``remote_size``), brought into the file by fills
(``fills``: streamed ranged GETs, planned per handle by ``readahead``) before they are read,
or are zeros (a hole, or past the old end). Reads are always answered from the file, so the
process holds no read-ahead in memory. Uploading fills the gaps first: a small file is one
PUT; a large one is a multipart upload in which parts nobody wrote are server-side copies of the old object
(UploadPartCopy), so appending to a large file uploads only its end. When the cache is over
its size, a file being written from empty uploads its finished parts at once and frees them
locally, so a file larger than the cache streams through it.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mimetypes
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .fills import Fill, Fills
from .metadata import Attr
from .ranges import RangeSet, without
from .readahead import AHEAD, MissSize, Plan, ReadAhead
from .readbuf import pread_bytes
from .s3client import FileRegion, S3Client, S3Error

__all__ = ["Tuning", "CacheBudget", "OpenFile", "Handle", "io_error"]

log = logging.getLogger("edgestore.fuse")

MIB = 1024 * 1024
MIN_PART = 5 * MIB  # S3's smallest part but the last
MAX_PARTS = 10_000
WAIT_S = 120.0  # the longest a read waits for its bytes (two of the client's timeouts)
FILL_WAIT_S = 1.0  # between looks at a fill that brings nothing
CLOSE_WAIT_S = 60.0  # for the fills still running when the file is closed
_FALLOC_PUNCH = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")
# (fd or None for no local file, length, offset) -> the reply: what ``read`` hands its bytes to
Reader = Callable[[int | None, int, int], T]


def io_error(what: str, exc: Exception) -> OSError:
    log.error("%s: %s", what, exc)
    if isinstance(exc, S3Error) and exc.status in (401, 403):
        return OSError(errno.EACCES, what)
    if isinstance(exc, S3Error) and exc.code == "EntityTooLarge":
        return OSError(errno.EFBIG, what)
    return OSError(errno.EIO, what)


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Give the disk blocks of a range back (the file keeps its size; the range reads as zeros)."""
    if _libc.fallocate(fd, _FALLOC_PUNCH, ctypes.c_long(offset), ctypes.c_long(length)) != 0:
        log.debug("fallocate(PUNCH_HOLE) failed: %s", os.strerror(ctypes.get_errno()))


@dataclass(frozen=True)
class Tuning:
    part_size: int = 8 * MIB
    readahead: int = 8 * MIB  # the largest fill: four ahead of a sequential reader
    cache_bytes: int = 1024 * MIB
    cache_dir: str = "/tmp"

    def part_size_for(self, size: int) -> int:
        part = max(self.part_size, MIN_PART)
        while size > part * MAX_PARTS:
            part *= 2
        return part


class CacheBudget:
    """Bytes the open files hold in the local cache, all files together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def change(self, delta: int) -> bool:
        """Account ``delta`` bytes; True while the cache is within its size."""
        with self._lock:
            self.used += delta
            return self.used <= self.limit


@dataclass
class _Stream:
    """A multipart upload started while a file is being written, once the cache is full:
    each part is sent as soon as the writer has moved past it."""

    upload_id: str
    part_size: int
    headers: dict[str, str]  # the metadata the upload was started with
    parts: list[Future[str]] = field(default_factory=list)  # part n+1 is parts[n]

    @property
    def done(self) -> int:
        return len(self.parts) * self.part_size

    def drop_from(self, number: int) -> None:
        """Parts ``number``+1 on change: wait until they are sent (a new upload of the same part
        must come after), then forget them."""
        wait(self.parts[number:])
        del self.parts[number:]

    def sent(self) -> int:
        """Bytes from the start that are surely in the upload (every part before done)."""
        count = 0
        for part in self.parts:
            if not part.done() or part.exception() is not None:
                break
            count += 1
        return count * self.part_size


class OpenFile:
    def __init__(self, client: S3Client, key: str, attr: Attr, exists: bool, tuning: Tuning,
                 budget: CacheBudget, pool: ThreadPoolExecutor | None = None,
                 uploads: ThreadPoolExecutor | None = None) -> None:
        """``pool`` runs the fills of the local file (what reads need, read ahead, the regions
        around random misses); ``uploads`` sends the parts of a changed file at close, several
        at once (each streamed from the local file). They are sent at close, not while writing
        (which measured slower here: docs/mounts.md), unless the cache fills first."""
        self.client, self.tuning, self.budget, self.uploads = client, tuning, budget, uploads
        self.key: str | None = key  # None once unlinked: the handles keep the data, nothing is uploaded
        self.attr = attr
        self.remote_size = attr.size if exists else 0
        self.exists = exists
        self.dirty = not exists  # a new file is uploaded on its first flush, even empty
        self.present = RangeSet()
        self.lock = threading.RLock()
        self.refs = 0
        self._fd: int | None = None
        self._held = 0  # bytes of `present`, as accounted in the budget
        self._stream: _Stream | None = None
        self.fills = Fills(self.lock, pool, self._get_into, self._store, AHEAD)
        self.misses = MissSize()

    # -- the local copy -------------------------------------------------------------------

    def _temp(self) -> int:
        if self._fd is None:
            try:  # a file with no name: nothing is left behind if the mount dies
                self._fd = os.open(self.tuning.cache_dir, os.O_RDWR | os.O_TMPFILE, 0o600)
            except OSError:
                fd, name = tempfile.mkstemp(dir=self.tuning.cache_dir)
                os.unlink(name)
                self._fd = fd
        return self._fd

    def _account(self) -> bool:
        held = self.present.total()
        ok = self.budget.change(held - self._held)
        self._held = held
        return ok

    def _get_into(self, start: int, length: int, write: Callable[[int, memoryview], None]) -> int:
        assert self.key is not None
        return self.client.get_into(self.key, start, length, write)

    def _store(self, pos: int, piece: memoryview) -> None:
        """A fill's piece of the object at ``pos`` (lock held): written where the local file
        holds nothing yet (a local change since the fill started wins), below the size the
        object had (a truncate since cuts it)."""
        end = min(pos + len(piece), self.remote_size)
        if end <= pos:
            return
        fd, added = self._temp(), 0
        for gap_start, gap_end in self.present.missing(pos, end):
            os.pwrite(fd, piece[gap_start - pos:gap_end - pos], gap_start)
            added += gap_end - gap_start
        self.present.add(pos, end)
        self._held += added  # (what _account would count: a file of many ranges sums them slowly)
        self.budget.change(added)

    def _await(self, start: int, end: int, piece: int) -> None:
        """Wait until the local file holds [start, end) of the object (lock held; released
        while waiting): what no fill brings is fetched now."""
        deadline = time.monotonic() + WAIT_S
        while gaps := self.present.missing(start, min(end, self.remote_size)):
            gap_start, gap_end = gaps[0]
            fill = self.fills.covering(gap_start)
            if fill is None:
                fill = self.fills.start(gap_start, gap_end, self.present, piece, ahead=False)[0]
            self.fills.hurry(fill)

            def arrived(fill: Fill = fill, gap_start: int = gap_start) -> bool:
                return fill.done or fill.pos > gap_start

            self.fills.cond.wait_for(arrived, FILL_WAIT_S)
            if fill.done and fill.error is not None:
                raise io_error(f"read of {self.key}", fill.error)
            if fill.done and fill.short and fill.end <= self.remote_size:
                raise OSError(errno.EIO, f"{self.key} is shorter than it was when opened")
            if time.monotonic() > deadline:
                raise OSError(errno.EIO, f"read of {self.key}: no answer within {WAIT_S:.0f} s")

    def _fill(self, start: int, end: int) -> None:
        """Copy what the object holds of [start, end) into the local file, where it is missing."""
        end = min(end, self.remote_size)
        self.fills.start(start, end, self.present, self.tuning.readahead, ahead=False)
        self._await(start, end, self.tuning.readahead)

    def _make_room(self, keep_start: int, keep_end: int) -> None:
        """Fetching [keep_start, keep_end) of a file not changed here would overfill the cache:
        give back what the local file holds elsewhere (it holds nothing not in the object)."""
        if self.dirty or self._stream is not None or self._fd is None:
            return
        wanted = sum(e - s for s, e in self.present.missing(keep_start, keep_end))
        if self.budget.used + wanted <= self.budget.limit:
            return
        for start, end in list(self.present):
            for s, e in without([(start, end)], keep_start, keep_end):
                punch_hole(self._fd, s, e - s)
                self.present.remove(s, e)
        self._account()

    def _prepare(self, plan: Plan) -> None:
        """Start the fills a read needs (lock held): its own bytes if they are neither here nor
        on their way (from where it reads, so they come first; for a random read also the
        region around it), and for a sequential reader the next pieces ahead of it."""
        if self.fills.reach(plan.start, self.present) == plan.start:  # a miss
            first, last = ((plan.start, plan.end) if plan.sequential  # (a region: at most a quarter of the cache)
                           else self.misses.around(plan.start, self.remote_size, self.budget.limit // 4))
            last = max(last, plan.end)
            if not plan.sequential:  # what earlier misses' regions have not begun: the reader moved on
                self.fills.stop(lambda fill: fill.ahead and not fill.running)
            self._make_room(first, last)
            own = min(plan.start + plan.piece, last)
            self.fills.start(plan.start, own, self.present, plan.piece, ahead=False)
            self.fills.start(own, last, self.present, plan.piece, ahead=True)
            self.fills.start(first, plan.start, self.present, plan.piece, ahead=True)
        if not plan.sequential:
            return
        frontier = self.fills.reach(plan.start, self.present)
        while (frontier < plan.end and self.fills.ahead_count() < AHEAD
               and plan.end - frontier >= min(plan.piece, self.remote_size - frontier)):
            self._make_room(plan.start, frontier + plan.piece)
            self.fills.start(frontier, min(frontier + plan.piece, self.remote_size), self.present, plan.piece,
                             ahead=True)
            frontier = self.fills.reach(frontier, self.present)

    def _check_streamed(self, start: int, end: int) -> None:
        """Parts already uploaded by a started stream and freed locally cannot be read or changed."""
        if self._stream and start < self._stream.done and not self.present.covers(start, min(end, self._stream.done)):
            raise OSError(errno.EIO, "that part of the file was already uploaded and freed from the cache "
                                     "(files larger than the cache must be written sequentially)")

    # -- reads and writes -----------------------------------------------------------------

    def seed(self, first: bytes, ahead: ReadAhead) -> None:
        """The object's first bytes, fetched by the open: into the local file, as if read."""
        with self.lock:
            if self.key is not None and first:
                self._store(0, memoryview(first))
                ahead.seed(0, len(first))

    def read(self, offset: int, size: int, ahead: ReadAhead) -> bytes:
        return self.read_with(offset, size, ahead, pread_bytes)

    def read_with(self, offset: int, size: int, ahead: ReadAhead, reader: Reader[T]) -> T:
        """``size`` bytes from ``offset`` (fewer at the end), once the local file holds them, as
        ``reader`` reads them from it (with the lock held: no fill or hole punch meanwhile)."""
        with self.lock:
            end = min(offset + size, self.attr.size)
            if offset >= end:
                return reader(None, 0, offset)
            self._check_streamed(offset, end)
            if self.key is not None and offset < self.remote_size:
                plan = ahead.plan(offset, end - offset, self.remote_size)
                self._prepare(plan)
                self._await(offset, end, plan.piece)
            # (no local file: nothing fetched nor written, a new file's hole, or one unlinked)
            return reader(self._fd, end - offset, offset)

    def write(self, data: bytes, offset: int) -> int:
        with self.lock:
            end = offset + len(data)
            if self._stream and offset < self._stream.done:
                self._check_streamed(offset, end)
                # An uploaded part changes: upload it again (same part numbers) from here on.
                self._stream.drop_from(offset // self._stream.part_size)
            os.pwrite(self._temp(), data, offset)
            self.present.add(offset, end)
            now = time.time_ns()
            self.attr.size = max(self.attr.size, end)
            self.attr.mtime_ns = self.attr.ctime_ns = now
            self.dirty = True
            if not self._account():
                self._stream_parts()
            return len(data)

    def truncate(self, length: int) -> None:
        with self.lock:
            if length == self.attr.size and not self.dirty:
                return
            if self._stream:
                if length < self._stream.done:
                    self._check_streamed(0, length)
                    self._stream.drop_from(length // self._stream.part_size)
            os.ftruncate(self._temp(), length)
            self.present.clip(length)
            self.remote_size = min(self.remote_size, length)
            self.attr.size = length
            self.attr.mtime_ns = self.attr.ctime_ns = time.time_ns()
            self.dirty = True
            self._account()

    # -- uploads --------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = self.attr.meta_headers()
        if not self.attr.content_type and self.key:
            headers["Content-Type"] = mimetypes.guess_type(self.key)[0] or "application/octet-stream"
        return headers

    def _submit(self, call: Callable[..., str], *args: Any) -> Future[str]:
        """``call(*args)`` here and now, its outcome as a settled future (what _Stream keeps)."""
        done: Future[str] = Future()
        try:
            done.set_result(call(*args))
        except S3Error as exc:
            done.set_exception(exc)
        return done

    def _send_part(self, number: int, start: int, length: int) -> Future[str]:
        assert self.key is not None and self._stream is not None
        return self._submit(self.client.upload_part, self.key, self._stream.upload_id, number,
                            FileRegion(self._temp(), start, length))

    def _stream_parts(self) -> None:
        """The cache is full and this file was written from empty: send its finished parts
        now, and free them locally once they are in the upload."""
        if self.key is None or self.remote_size > 0:
            return  # a change to an existing object needs its old bytes: the cache overflows instead
        if self._stream is None:
            part = self.tuning.part_size_for(0)
            if self.attr.size < 2 * part:
                return
            headers = self._headers()
            try:
                self._stream = _Stream(self.client.create_multipart(self.key, headers), part, headers)
            except S3Error as exc:
                raise io_error(f"upload of {self.key}", exc) from exc
            log.debug("%s: uploading while writing (upload %s)", self.key, self._stream.upload_id)
        stream = self._stream
        frontier = max((e for _, e in self.present), default=0)
        while stream.done + stream.part_size < frontier:  # the part after the last write stays local
            start = stream.done
            if not self.present.covers(start, start + stream.part_size):
                break  # a hole not written yet: maybe it still will be
            stream.parts.append(self._send_part(len(stream.parts) + 1, start, stream.part_size))
        wait([p for p in stream.parts if not p.done()])
        if any(p.done() and p.exception() is not None for p in stream.parts):
            try:
                self._results(stream)
            except S3Error as exc:
                raise io_error(f"upload of {self.key}", exc) from exc
        sent = stream.sent()
        for start, end in list(self.present):
            if start < sent:
                punch_hole(self._temp(), start, min(end, sent) - start)
        self.present.remove(0, sent)
        self._account()

    def upload(self) -> None:
        """Make the object hold what the file holds now (flush, fsync, release)."""
        with self.lock:
            if not self.dirty or self.key is None:
                return
            key, size = self.key, self.attr.size
            try:
                if self._stream:
                    etag = self._finish_stream(key, size)
                elif size <= self.tuning.part_size:
                    self._fill(0, size)
                    body = FileRegion(self._temp(), 0, size) if size else b""
                    etag = self.client.put(key, body, self._headers())
                else:
                    etag = self._multipart(key, size)
            except S3Error as exc:
                raise io_error(f"upload of {key}", exc) from exc
            self.attr.etag = etag
            self.remote_size, self.exists, self.dirty = size, True, False

    @staticmethod
    def _results(stream: _Stream) -> list[str]:
        """The ETags of the parts sent; a failed part is forgotten with those after it (sent
        again by the next attempt) and its error raised."""
        etags: list[str] = []
        for index, part in enumerate(stream.parts):
            try:
                etags.append(part.result())
            except S3Error:
                stream.drop_from(index)
                raise
        return etags

    def _finish_stream(self, key: str, size: int) -> str:
        stream = self._stream
        assert stream is not None
        for start in range(stream.done, size, stream.part_size):
            stream.parts.append(self._send_part(len(stream.parts) + 1, start, min(stream.part_size, size - start)))
        etags = self._results(stream)
        self.client.complete_multipart(key, stream.upload_id, etags)
        self._stream = None
        headers = self._headers()
        if headers != stream.headers:
            # The upload was started with the metadata of the moment the cache filled: later
            # writes (mtime), chmod, chown, utimensat and xattrs before the close are stored
            # now, by a copy onto itself (metadata only on edgestore).
            self.client.copy(key, key, headers)
        head = self.client.head(key)
        return head.etag if head else ""

    def _send(self, call: Callable[..., str], *args: Any) -> Future[str]:
        """``call(*args)`` on the upload pool (inline without one)."""
        if self.uploads is None:
            return self._submit(call, *args)
        return self.uploads.submit(call, *args)

    def _multipart(self, key: str, size: int) -> str:
        part = self.tuning.part_size_for(size)
        upload_id = self.client.create_multipart(key, self._headers())
        parts: list[Future[str]] = []
        try:
            for number, start in enumerate(range(0, size, part), start=1):
                end = min(start + part, size)
                untouched = end <= self.remote_size and self.present.missing(start, end) == [(start, end)]
                if untouched and self.attr.etag:
                    parts.append(self._send(self.client.upload_part_copy, key, upload_id, number, key, start,
                                            end, self.attr.etag))
                    continue
                self._fill(start, end)
                parts.append(self._send(self.client.upload_part, key, upload_id, number,
                                        FileRegion(self._temp(), start, end - start)))
            etags = [p.result() for p in parts]
            self.client.complete_multipart(key, upload_id, etags)
        except BaseException:
            wait(parts)
            try:
                self.client.abort_multipart(key, upload_id)
            except S3Error as exc:
                log.warning("abort of upload %s of %s: %s", upload_id, key, exc)
            raise
        head = self.client.head(key)
        return head.etag if head else ""

    # -- unlink and close -----------------------------------------------------------------

    def detach(self) -> None:
        """The name is going away while handles are open: keep the bytes locally for them."""
        with self.lock:
            if self.key is not None and self.attr.size:
                try:
                    if self._stream:
                        self._abort_stream()
                    else:
                        self._fill(0, self.attr.size)
                except (S3Error, OSError) as exc:
                    log.warning("keeping unlinked %s for its open handles: %s", self.key, exc)
            self.key, self.dirty = None, False

    def _abort_stream(self) -> None:
        if self._stream:
            wait(self._stream.parts)  # no part may still read the local file once it is closed
        if self._stream and self.key:
            try:
                self.client.abort_multipart(self.key, self._stream.upload_id)
            except S3Error as exc:
                log.warning("abort of upload %s of %s: %s", self._stream.upload_id, self.key, exc)
        self._stream = None

    def close(self) -> None:
        """The last handle is gone: free the local copy (after the caller's last upload)."""
        with self.lock:
            if not self.fills.stop_all(CLOSE_WAIT_S):
                log.warning("%s: fills still running at close; its local copy is kept open", self.key)
                return
            self._abort_stream()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.present = RangeSet()
            self._account()


@dataclass
class Handle:
    """One open(2): the shared file, the flags it was opened with, its own read-ahead."""

    file: OpenFile
    flags: int
    ahead: ReadAhead
