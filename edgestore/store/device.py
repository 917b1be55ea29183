"""One local device: its metadata database and its block files, under one directory."""

from __future__ import annotations

from pathlib import Path

from edgestore.store.blocks import BlockStore
from edgestore.store.meta import MetaStore

__all__ = ["LocalDevice"]


class LocalDevice:
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.meta = MetaStore(path / "meta.db")
        self.blocks = BlockStore(path / "blocks", name)

    def close(self) -> None:
        self.meta.close()
