"""Content-addressed block files of one device.

A block is named by the BLAKE2b-256 hash of its bytes, which is also its checksum: a
read re-hashes the block and quarantines it if it no longer matches, so a rotten SD
card sector is never served. Files are written durably: temp file in the same
filesystem, fsync, rename, fsync of the directory, before the write is acknowledged.
All I/O runs in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from pathlib import Path

from edgestore.errors import CorruptBlock, NoSuchBlock, StoreError

__all__ = ["BlockStore", "block_hash", "BLOCK_ID"]

BLOCK_ID = re.compile(r"^[0-9a-f]{64}$")


def block_hash(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def _fsync_dir(path: Path) -> None:
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
        return self.root / block[:2] / block[2:4] / block

    async def put(self, block: str, data: bytes) -> None:
        """Store a block whose hash the caller has verified."""
        await asyncio.to_thread(self._put_sync, block, data)

    def _put_sync(self, block: str, data: bytes) -> None:
        final = self.path_of(block)
        if final.exists():
            return  # content-addressed: the same name means the same bytes
        tmp = self.tmp / f"{block}.{secrets.token_hex(8)}"
        try:
            self._make_dirs_sync(final.parent)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
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
        for path in (directory.parent, directory):
            if not path.is_dir():
                path.mkdir(exist_ok=True)
                created.append(path)
        for path in created:
            _fsync_dir(path.parent)

    async def get(self, block: str) -> bytes:
        return await asyncio.to_thread(self._get_sync, block)

    def _get_sync(self, block: str) -> bytes:
        path = self.path_of(block)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NoSuchBlock(block) from None
        except OSError as exc:
            raise StoreError(f"device {self.device_name}: cannot read block {block}: {exc}") from exc
        if block_hash(data) != block:
            self._quarantine_sync(path, block)
            raise CorruptBlock(block, self.device_name)
        return data

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
