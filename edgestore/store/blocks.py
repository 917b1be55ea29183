"""Block files of one device.

A block's id carries a checksum of its bytes (blockid.py): a read checks the block
against its name and quarantines it if it no longer matches, so a rotten SD card
sector is never served. The file of a pieced block holds its bytes and then its
pieces' digests (16 bytes each), which the id's checksum covers: a ranged read
(`read_range`) reads and checks only the pieces it needs. Files are written durably:
temp file in the same filesystem, fsync, rename, fsync of the directory, before the
write is acknowledged; once durable, their pages leave the page cache (make_durable).
All I/O runs in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, BinaryIO, NoReturn

from edgestore.errors import CorruptBlock, NoSuchBlock, StoreError
from edgestore.store.blockid import (
    DIGEST_BYTES,
    BlockBytes,
    BlockVerifier,
    covering_pieces,
    digests_size,
    is_legacy,
    is_pieced,
    piece_digests,
    piece_size,
    pieces_match,
    verify,
)

__all__ = ["BlockStore", "BlockTooLarge", "PieceRead", "block_file", "file_intact", "fsync_dir", "pieced_data_size",
           "take_range"]

# `receive` hands the bytes to its writer thread in batches of about this size: a block of
# 1 MiB goes to disk, checked, fsynced and placed in one thread hop, one of the default size
# (4 MiB) in four, and a larger one (anti-entropy may move any size) holds little memory.
RECEIVE_BATCH_BYTES = 1024 * 1024


def block_file(root: Path, block: str) -> Path:
    """Where a block's file lives under a device's block root. New ids fan out over 256
    directories, which all exist after the first few thousand blocks; legacy ids over
    65,536, each of which cost a new directory and a second directory fsync on most of a
    device's first 65,536 block writes (most of an SD card's life)."""
    if is_legacy(block):
        return root / block[:2] / block[2:4] / block
    return root / block[:2] / block


def pieced_data_size(file_size: int, piece: int) -> int:
    """The bytes of a pieced block whose file (bytes, then a digest per piece) is this long:
    with n pieces the file is size + 16n long, and n = ceil(file_size / (piece + 16))."""
    pieces = -(-file_size // (piece + DIGEST_BYTES))
    return file_size - pieces * DIGEST_BYTES


def take_range(data: bytes, start: int, first: int, last: int) -> bytes:
    """Bytes first..last (inclusive, of the block) out of `data`, which holds the block from
    offset `start`: `data` itself, not a copy, when that is all of it."""
    if (first - start, last - first + 1) == (0, len(data)):
        return data
    return data[first - start:last + 1 - start]


def file_intact(block: str, raw: bytes) -> bool:
    """Does a whole block file (a pieced block's with its digests) match the block's id?"""
    if not is_pieced(block):
        return verify(block, raw)
    view = memoryview(raw)
    size = pieced_data_size(len(raw), piece_size(block))
    return pieces_match(block, bytes(view[size:]), 0, view[:size])


@dataclass(frozen=True)
class PieceRead:
    """Checked pieces of a pieced block: the whole pieces that cover a wanted range, from
    offset `start` of the block's `size` bytes, and the digests of all its pieces (what a
    peer sends, so that the coordinator checks the bytes again after the network)."""
    size: int
    digests: bytes
    start: int
    data: bytes


class BlockTooLarge(StoreError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"block body larger than {limit} bytes")
        self.limit = limit


class BlockUpload:
    """A block arriving from a peer: its temp file, written a batch at a time in a thread
    and fed to the block's checksum on the way. `BlockStore.receive` writes every batch but
    the last; `finish` writes that one, fsyncs, checks the whole against the block id and
    moves the file into place, all in one thread hop (a 1 MiB block costs no other)."""

    def __init__(self, store: BlockStore, block: str) -> None:
        self._store = store
        self.block = block
        self.tmp = store.new_temp(block)
        self._verifier = BlockVerifier(block)
        self._file: BinaryIO | None = None
        self._last: list[bytes] = []
        self._placed = False

    def _write_sync(self, pieces: list[bytes]) -> None:
        if self._file is None:  # the first batch opens it: a thread hop fewer per block
            self._file = open(self.tmp, "wb")
        for piece in pieces:
            self._verifier.update(piece)
            self._file.write(piece)

    def _finish_sync(self) -> None:
        try:
            try:
                self._write_sync(self._last)
                assert self._file is not None
                self._file.write(self._verifier.digests())   # a pieced block's trailer (else b"")
                make_durable(self._file)
            finally:
                self._close()
        except OSError as exc:
            self._store.failed(self.tmp, self.block, exc)
        if not self._verifier.matches():
            self.tmp.unlink(missing_ok=True)
            raise CorruptBlock(self.block, self._store.device_name)
        self._store.place_sync(self.block, self.tmp)
        self._placed = True

    async def feed(self, pieces: AsyncIterator[bytes], limit: int) -> None:
        size = 0
        batch: list[bytes] = []
        batched = 0
        try:
            async for piece in pieces:
                size += len(piece)
                if size > limit:
                    raise BlockTooLarge(limit)
                if batch and batched + len(piece) > RECEIVE_BATCH_BYTES:
                    await asyncio.to_thread(self._write_sync, batch)
                    batch, batched = [], 0
                batch.append(piece)
                batched += len(piece)
        except OSError as exc:
            self._close()
            self._store.failed(self.tmp, self.block, exc)
        self._last = batch

    async def finish(self) -> None:
        """Write the rest, fsync, check and place: durable once this returns; CorruptBlock
        if the bytes are not the block's."""
        await asyncio.to_thread(self._finish_sync)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()

    def discard(self) -> None:
        """Drop an upload that will not be finished (a no-op once it is placed: no
        syscall on the event loop for the usual case)."""
        self._close()
        if not self._placed:
            self.tmp.unlink(missing_ok=True)


def make_durable(f: BinaryIO) -> None:
    """Flush and fsync a block's temp file, then drop its (now clean) pages from the page
    cache. A block is rarely read right after it is written, and a stream of them would
    otherwise fill a Pi's RAM and push out what is read all the time (SQLite's pages,
    directories); OpenStack Swift's object server drops large objects the same way. It also
    keeps a large upload writing into the same few recycled pages: on the 2-core VM of
    docs/performance.md, where fresh pages are dear, that took a 4-node cluster's large PUT
    from 113-143 to 167-192 MiB/s."""
    f.flush()
    os.fsync(f.fileno())
    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlockStore:
    def __init__(self, root: Path, device_name: str) -> None:
        self.root = root
        self.device_name = device_name
        self.tmp = root / "tmp"
        self.quarantine = root / "quarantine"
        for path in (root, self.tmp, self.quarantine):
            path.mkdir(parents=True, exist_ok=True)
        for stale in self.tmp.iterdir():  # left by a crash mid-write: never acknowledged
            stale.unlink(missing_ok=True)

    def path_of(self, block: str) -> Path:
        return block_file(self.root, block)

    async def put(self, block: str, data: BlockBytes) -> None:
        """Store a block whose bytes the caller has checked against its id."""
        await asyncio.to_thread(self._put_sync, block, data)

    def _put_sync(self, block: str, data: BlockBytes) -> None:
        # A block already here is kept by place_sync (the same id means the same bytes);
        # a fresh id, the usual case, is not looked up twice.
        tmp = self.new_temp(block)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if is_pieced(block):
                    f.write(piece_digests(data, piece_size(block)))
                make_durable(f)
        except OSError as exc:
            self.failed(tmp, block, exc)
        self.place_sync(block, tmp)

    async def receive(self, block: str, pieces: AsyncIterator[bytes], limit: int) -> BlockUpload:
        """Start writing a block's bytes to a temp file as they arrive, checking them on the
        way: only a batch is ever in memory, and the checksum and the writes run in a thread
        beside the loop. The caller `finish`es the upload (the last batch, the fsync and the
        placing, under its lock) or `discard`s it; BlockTooLarge past `limit` bytes."""
        upload = BlockUpload(self, block)
        try:
            await upload.feed(pieces, limit)
        except BaseException:
            upload.discard()
            raise
        return upload

    def place_sync(self, block: str, tmp: Path) -> None:
        final = self.path_of(block)
        try:
            if final.exists():
                tmp.unlink()
                return
            self._make_dirs_sync(final.parent)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        except OSError as exc:
            self.failed(tmp, block, exc)

    def new_temp(self, block: str) -> Path:
        return self.tmp / f"{block}.{secrets.token_hex(8)}"

    def failed(self, tmp: Path, block: str, exc: OSError) -> NoReturn:
        # A full disk (ENOSPC) lands here: the replica fails, the coordinator takes a
        # handoff, and the partial temp file must not keep the space it took.
        tmp.unlink(missing_ok=True)
        raise StoreError(f"device {self.device_name}: cannot write block {block}: {exc}") from exc

    def _make_dirs_sync(self, directory: Path) -> None:
        """Create a block's fan-out directories durably: a new directory's entry in its
        parent must reach the disk too, or a power cut could lose the block inside it."""
        if directory.is_dir():
            return
        created = []
        for path in (directory.parent, directory):   # (the root, a new id's parent, always exists)
            if not path.is_dir():
                path.mkdir(exist_ok=True)
                created.append(path)
        for path in created:
            fsync_dir(path.parent)

    async def get(self, block: str) -> bytes:
        """All of a block's bytes, checked."""
        return await asyncio.to_thread(self._get_sync, block)

    def _get_sync(self, block: str) -> bytes:
        path = self.path_of(block)
        try:
            with self._open(path, block) as f:
                if not is_pieced(block):
                    data = f.read()
                    intact = verify(block, data)
                else:
                    size = pieced_data_size(os.fstat(f.fileno()).st_size, piece_size(block))
                    data = f.read(size)
                    digests = f.read()
                    intact = pieces_match(block, digests, 0, data)
        except OSError as exc:
            raise StoreError(f"device {self.device_name}: cannot read block {block}: {exc}") from exc
        if not intact:
            self._quarantine_sync(path, block)
            raise CorruptBlock(block, self.device_name)
        return data

    async def read_range(self, block: str, first: int, last: int) -> bytes:
        """Bytes first..last (inclusive) of a block, checked: of a pieced block only the
        pieces that hold them are read; of an older one, all of it."""
        if not is_pieced(block):
            return take_range(await self.get(block), 0, first, last)
        read = await self.read_pieces(block, first, last)
        return take_range(read.data, read.start, first, last)

    async def read_pieces(self, block: str, first: int, last: int) -> PieceRead:
        """The checked pieces of a pieced block that cover bytes first..last (inclusive;
        clipped to the block)."""
        return await asyncio.to_thread(self._read_pieces_sync, block, first, last)

    def _read_pieces_sync(self, block: str, first: int, last: int) -> PieceRead:
        path = self.path_of(block)
        piece = piece_size(block)
        try:
            with self._open(path, block) as f:
                fd = f.fileno()
                size = pieced_data_size(os.fstat(fd).st_size, piece)
                digests = os.pread(fd, digests_size(piece, size), size)
                start, end = covering_pieces(piece, size, first, last)
                data = os.pread(fd, max(end - start, 0), start)
        except OSError as exc:
            raise StoreError(f"device {self.device_name}: cannot read block {block}: {exc}") from exc
        if len(data) != end - start or not pieces_match(block, digests, start, data):
            self._quarantine_sync(path, block)
            raise CorruptBlock(block, self.device_name)
        return PieceRead(size, digests, start, data)

    def _open(self, path: Path, block: str) -> BinaryIO:
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise NoSuchBlock(block) from None

    def _quarantine_sync(self, path: Path, block: str) -> None:
        try:
            os.replace(path, self.quarantine / block)
        except OSError:
            path.unlink(missing_ok=True)

    async def check(self, block: str) -> tuple[bool, bool]:
        """(present, intact) of a block file; a rotten one is quarantined on the way."""
        try:
            await self.get(block)
        except NoSuchBlock:
            return False, False
        except CorruptBlock:
            return True, False
        return True, True

    def quarantined(self) -> int:
        return sum(1 for _ in self.quarantine.iterdir())

    async def delete(self, block: str) -> None:
        await asyncio.to_thread(self.path_of(block).unlink, True)

    async def has(self, block: str) -> bool:
        return await asyncio.to_thread(self.path_of(block).exists)
