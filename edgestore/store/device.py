"""One local device: its metadata database and its block files, under one directory."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import AsyncIterator

from edgestore.errors import DeviceInUse, StoreError
from edgestore.store.blockid import BlockBytes
from edgestore.store.blocks import BlockStore
from edgestore.store.meta import GROUP_COMMIT_WINDOW_S, BlockRef, MetaStore, PartitionIndex

__all__ = ["LocalDevice"]

log = logging.getLogger(__name__)


class LocalDevice:
    """A device directory, held with an exclusive lock: two node processes on one device
    (a unit started twice, a stray `serve`) would clean each other's temp files."""

    def __init__(self, name: str, path: Path, group_commit_window_s: float = GROUP_COMMIT_WINDOW_S) -> None:
        self.name = name
        self.path = path
        self._group_commit_window_s = group_commit_window_s
        self._block_locks = [asyncio.Lock() for _ in range(256)]
        self._open()

    def _open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        lock = open(self.path / "lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise DeviceInUse(self.name, self.path) from None
        self._lock = lock
        try:
            self.meta = self._open_meta()
        except (sqlite3.DatabaseError, StoreError) as exc:
            # Too damaged to open (a rotten header page): start afresh beside the wreck.
            log.error("device %s: database cannot be opened (%s): quarantining it", self.name, exc)
            self._move_database_aside()
            self.meta = self._open_meta()
        self.blocks = BlockStore(self.path / "blocks", self.name)
        self._identity = self._current_identity()

    def _open_meta(self) -> MetaStore:
        return MetaStore(self.path / "meta.db", self._group_commit_window_s)

    def _move_database_aside(self) -> None:
        aside = self.path / "quarantine" / f"meta-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        aside.mkdir(parents=True, exist_ok=True)
        for path in self.path.glob("meta.db*"):
            os.replace(path, aside / path.name)

    def quarantine_database(self) -> None:
        """Move a damaged database aside and open an empty one: the replicas refill it
        (block files stay; their references come back with anti-entropy)."""
        self.meta.close()
        self._move_database_aside()
        self.meta = self._open_meta()
        self._identity = self._current_identity()

    def _current_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path / "meta.db")
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def replaced(self) -> bool:
        """Has the directory been wiped or swapped under us (a card replaced, an operator's
        rm -rf)? Writes would then land in unlinked files and vanish."""
        return self._current_identity() != self._identity

    def reopen(self) -> None:
        """Start afresh on what is now at the path; anti-entropy refills it from the replicas."""
        log.warning("device %s at %s was replaced or wiped: reopening it empty", self.name, self.path)
        self.close()
        self._open()

    def block_lock(self, block: str) -> asyncio.Lock:
        """Serialises storing a block with collecting it, so a block being written again
        (the same bytes, a new reference) is never deleted under the new writer."""
        return self._block_locks[int(block[:2], 16)]

    async def store_block(self, block: str, data: BlockBytes, ref: BlockRef) -> None:
        async with self.block_lock(block):
            await self.blocks.put(block, data)
            await self.meta.add_block_refs([ref], stored_now=True)

    async def receive_block(self, block: str, pieces: AsyncIterator[bytes], ref: BlockRef, limit: int) -> None:
        """Store a block as its bytes arrive (a peer's upload): written to a temp file
        outside the lock, which covers only the last batch, the fsync and putting it in
        place (one thread hop) with its reference."""
        upload = await self.blocks.receive(block, pieces, limit)
        try:
            async with self.block_lock(block):
                await upload.finish()
                await self.meta.add_block_refs([ref], stored_now=True)
        finally:
            upload.discard()  # a no-op once placed

    async def collect_block(self, block: str, dead_refs: set[str]) -> bool:
        """Delete a block whose references were all found dead, unless a new one arrived."""
        async with self.block_lock(block):
            if not await self.meta.collect_block(block, dead_refs):
                return False
            await self.blocks.delete(block)
            return True

    async def partition_state(self, part: int) -> tuple[PartitionIndex, set[str]]:
        """A partition's index, and which of the blocks it references have their file here."""
        index = await self.meta.partition_index(part)
        referenced = {block for block, _, _ in index.refs}
        present = await asyncio.to_thread(lambda: {b for b in referenced if self.blocks.path_of(b).exists()})
        return index, present

    def close(self) -> None:
        self.meta.close()
        self._lock.close()
