"""Keeps a node's ring file and the ring it serves with in step, and only ever moves
them forward.

A ring is newer than another when its (version, checksum) is greater: the version orders
changes, and the checksum breaks the tie between two different rings an operator made at
the same version on two nodes at once, so every node settles on the same one. A ring that
arrives (from a peer, or from an admin change on this node) is checked first — the file's
own checksum, then the placement's invariants — written atomically, then swapped in.

Several nodes may share one ring file (`edgestore up` gives all its nodes one): a lock
file beside it serialises writers, and a file that is already newer is never overwritten.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgestore.cluster.ringstate import RingState
from edgestore.ring import Ring, RingBuilder, RingError, RingValidationError, atomic_write
from edgestore.ring.io import builder_from_bytes, builder_to_bytes

__all__ = ["RingKeeper", "RingKey", "ring_key", "ring_from_bytes", "StaleRing"]

log = logging.getLogger(__name__)

RingKey = tuple[int, str]


class StaleRing(Exception):
    """A change was asked of a ring file that is older than the ring in use."""


def ring_key(ring: Ring) -> RingKey:
    return (ring.version, ring.checksum)


def ring_from_bytes(data: bytes, source: str) -> Ring:
    """The placement ring in ring-file bytes; `RingFileError` if they are damaged or
    describe a ring that cannot be served (never rebalanced, broken invariants)."""
    builder = builder_from_bytes(data, source)
    try:
        return Ring(builder.to_ringdata())
    except RingValidationError as exc:
        raise RingError(f"{source}: {exc}") from exc


class RingKeeper:
    def __init__(self, state: RingState) -> None:
        self.state = state
        self._lock = asyncio.Lock()
        self._seen_stat: tuple[int, int, int] | None = self._stat()
        # The file bytes of the ring in use (one compressed ring, well under a few MiB):
        # what peers fetch, and what restores a file someone replaced with an older ring.
        self._data = self._read_current()

    def _read_current(self) -> bytes | None:
        try:
            data = Path(self.state.path).read_bytes()
            return data if ring_key(ring_from_bytes(data, str(self.state.path))) == self.key else None
        except (OSError, RingError):
            return None

    @property
    def ring(self) -> Ring:
        return self.state.ring

    @property
    def key(self) -> RingKey:
        return ring_key(self.state.ring)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.state.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def file_bytes(self) -> bytes:
        """The ring file of the ring in use (what peers fetch)."""
        if self._data is None:   # the file changed under us since start: take what is there
            return Path(self.state.path).read_bytes()
        return self._data

    async def install(self, data: bytes, source: str) -> bool:
        """Adopt the ring in `data` if it is newer than the one in use; False if it is not.
        Raises `RingError` if the bytes are damaged."""
        ring = ring_from_bytes(data, source)
        async with self._lock:
            if ring_key(ring) <= self.key:
                return False
            await asyncio.to_thread(self._write_unless_older, data, ring)
            self._swap(ring, data, source)
            return True

    async def refresh_from_disk(self) -> bool:
        """Adopt the ring file if someone replaced it with a newer ring (an operator's copy,
        or another node sharing the file); cheap when it did not change."""
        stat = self._stat()
        if stat is None or stat == self._seen_stat:
            return False
        self._seen_stat = stat
        try:
            data = await asyncio.to_thread(Path(self.state.path).read_bytes)
            ring = ring_from_bytes(data, str(self.state.path))
        except (OSError, RingError) as exc:
            log.warning("ring file %s unusable, keeping ring version %d: %s", self.state.path,
                        self.ring.version, exc)
            return False
        async with self._lock:
            if ring_key(ring) > self.key:
                self._swap(ring, data, "the ring file")
                return True
            if ring_key(ring) < self.key and self._data is not None:
                log.warning("ring file %s was replaced with ring version %d, older than version %d in use: "
                            "restoring it", self.state.path, ring.version, self.ring.version)
                await asyncio.to_thread(self._write_unless_older, self._data, self.ring)
            return False

    async def change(self, edit: Callable[[RingBuilder], Any]) -> tuple[Ring, Any]:
        """Apply an operator's edit to the builder of the ring in use and adopt the result.
        Returns the new ring and what `edit` returned; `StaleRing` if the ring file (read
        when the one in use is not known as bytes) is older than the ring in use,
        `RingError` if the edit is refused."""
        await self.refresh_from_disk()   # a newer file (shared with other nodes) is the one to edit
        async with self._lock:
            data = self.file_bytes()
            builder = builder_from_bytes(data, str(self.state.path))
            if builder.version < self.ring.version:
                raise StaleRing(f"{self.state.path} holds ring version {builder.version}, older than "
                                f"version {self.ring.version} in use; not editing it")
            outcome = edit(builder)
            new_data = builder_to_bytes(builder)
            ring = ring_from_bytes(new_data, "the edited ring")
            if ring_key(ring) <= self.key:
                return self.ring, outcome   # nothing changed (a rebalance that moved nothing)
            await asyncio.to_thread(self._write_unless_older, new_data, ring)
            self._swap(ring, new_data, "an admin change")
            return ring, outcome

    def _swap(self, ring: Ring, data: bytes, source: str) -> None:
        old = self.ring.version
        self.state.ring = ring
        self._data = data
        log.info("ring version %d -> %d (from %s)", old, ring.version, source)

    def _write_unless_older(self, data: bytes, ring: Ring) -> None:
        """Write `data` unless the file already holds this ring or a newer one (which the
        next `refresh_from_disk` then adopts)."""
        path = Path(self.state.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                on_disk = ring_key(ring_from_bytes(path.read_bytes(), str(path)))
            except (OSError, RingError):
                on_disk = None   # missing or damaged: ours replaces it
            if on_disk is None or on_disk < ring_key(ring):
                atomic_write(path, data)
                self._seen_stat = self._stat()
