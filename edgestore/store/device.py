"""One local device: its metadata database and its block files, under one directory."""

from __future__ import annotations

import fcntl
from pathlib import Path

from edgestore.errors import DeviceInUse
from edgestore.store.blocks import BlockStore
from edgestore.store.meta import MetaStore

__all__ = ["LocalDevice"]


class LocalDevice:
    """A device directory, held with an exclusive lock: two node processes on one device
    (a unit started twice, a stray `serve`) would clean each other's temp files."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._lock = open(path / "lock", "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise DeviceInUse(name, path) from None
        self.meta = MetaStore(path / "meta.db")
        self.blocks = BlockStore(path / "blocks", name)

    def close(self) -> None:
        self.meta.close()
        self._lock.close()
