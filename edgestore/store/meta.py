"""The metadata store of one device: one SQLite database (WAL), rows keyed by partition.

SQLite calls never run on the event loop. Writes go to one writer thread that applies
every write queued since its last commit in a single transaction, so many concurrent
writes share one fsync (group commit); a write's future resolves only after its commit
is durable (synchronous=FULL). Reads use a second connection on their own thread: WAL
lets them proceed while the writer commits.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import xxhash

from edgestore.errors import StoreError
from edgestore.store.records import Record

__all__ = ["MetaStore"]

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    part INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    node TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    value TEXT NOT NULL,
    data BLOB,
    data_xxh3 INTEGER,          -- checksum of inline data, re-verified by the scrubber
    PRIMARY KEY (kind, name)
);
CREATE INDEX IF NOT EXISTS records_by_part ON records (part, kind, name);
CREATE TABLE IF NOT EXISTS block_refs (
    block TEXT NOT NULL,
    ref TEXT NOT NULL,           -- the object version that uses the block
    part INTEGER NOT NULL,       -- the block's partition
    ts INTEGER NOT NULL,
    PRIMARY KEY (block, ref)
);
CREATE INDEX IF NOT EXISTS block_refs_by_part ON block_refs (part, block);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Last writer wins, in SQL: an incoming row replaces the stored one only if its
# (ts, node) is larger, so applying the same record twice or out of order is harmless.
_MERGE = """
INSERT INTO records (kind, name, part, ts, node, deleted, value, data, data_xxh3)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (kind, name) DO UPDATE SET
    part = excluded.part, ts = excluded.ts, node = excluded.node,
    deleted = excluded.deleted, value = excluded.value,
    data = excluded.data, data_xxh3 = excluded.data_xxh3
WHERE excluded.ts > records.ts OR (excluded.ts = records.ts AND excluded.node > records.node)
"""

_COLUMNS = "kind, name, ts, node, deleted, value"


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    # A small page cache: a Pi has little RAM and the OS caches the file anyway.
    conn.execute("PRAGMA cache_size=-2048")
    return conn


def _row_to_record(row: tuple[Any, ...], data: bytes | None = None) -> Record:
    kind, name, ts, node, deleted, value = row[:6]
    return Record(kind=kind, name=name, ts=ts, node=node, deleted=bool(deleted),
                  value=json.loads(value), data=data)


class MetaStore:
    """Records and block references of one device."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"meta-w-{path.parent.name}")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix=f"meta-r-{path.parent.name}")
        self._wconn = self._writer.submit(self._open_writer_sync).result()
        self._rconn = self._reader.submit(_connect, path).result()
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._pending_lock = threading.Lock()
        self._flush_scheduled = False

    def _open_writer_sync(self) -> sqlite3.Connection:
        conn = _connect(self.path)
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema {row[0]}, newer than this edgestore knows")
        return conn

    def close(self) -> None:
        self._writer.submit(self._wconn.close).result()
        self._reader.submit(self._rconn.close).result()
        self._writer.shutdown()
        self._reader.shutdown()

    # -- writes: queued, group-committed -------------------------------------------

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        with self._pending_lock:
            self._pending.append((op, fut))
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            self._writer.submit(self._flush_sync, loop)
        return await fut

    def _flush_sync(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
            self._flush_scheduled = False
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        conn = self._wconn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, fut in batch:
                conn.execute("SAVEPOINT op")
                try:
                    results.append((fut, op(conn), None))
                    conn.execute("RELEASE op")
                except sqlite3.Error as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((fut, None, StoreError(f"{self.path}: {exc}")))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            err = StoreError(f"{self.path}: commit failed: {exc}")
            results = [(fut, None, err) for _, fut in batch]
        for fut, value, error in results:
            loop.call_soon_threadsafe(_settle, fut, value, error)

    async def merge(self, records: Iterable[tuple[Record, int]]) -> dict[str, int]:
        """Merge (record, partition) pairs, last writer wins. Returns, for each record that
        lost to a newer stored version, that version's timestamp (by record name): the
        coordinator of a new write uses it to notice its clock is behind and write again."""
        rows = [
            (r.kind, r.name, part, r.ts, r.node, int(r.deleted), json.dumps(r.value, separators=(",", ":")),
             r.data, xxhash.xxh3_64_intdigest(r.data) - (1 << 63) if r.data is not None else None)
            for r, part in records
        ]

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            conn.executemany(_MERGE, rows)
            newer = {}
            for kind, name, _, ts, node, *_rest in rows:
                stored = conn.execute("SELECT ts, node FROM records WHERE kind = ? AND name = ?",
                                      (kind, name)).fetchone()
                if stored is not None and (stored[0], stored[1]) > (ts, node):
                    newer[name] = int(stored[0])
            return newer

        return await self._write(op)

    async def add_block_ref(self, block: str, ref: str, part: int, ts: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR IGNORE INTO block_refs VALUES (?, ?, ?, ?)", (block, ref, part, ts))
        await self._write(op)

    # -- reads -------------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader, fn, self._rconn)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    async def get(self, kind: str, name: str, with_data: bool = True) -> Record | None:
        def fn(conn: sqlite3.Connection) -> Record | None:
            row = conn.execute(
                f"SELECT {_COLUMNS}, data, data_xxh3 FROM records WHERE kind = ? AND name = ?",
                (kind, name)).fetchone()
            if row is None:
                return None
            data = row[6]
            if data is not None and xxhash.xxh3_64_intdigest(data) - (1 << 63) != row[7]:
                raise StoreError(f"{self.path}: inline data of {kind} {name!r} fails its checksum")
            return _row_to_record(row, data if with_data else None)
        return await self._read(fn)

    async def list(self, kind: str, prefix: str = "", after: str | None = None,
                   limit: int = 1000) -> list[Record]:
        """Records of one kind whose names start with prefix, in name order, tombstones
        included (the coordinator needs them to merge replicas), without inline data."""
        def fn(conn: sqlite3.Connection) -> list[Record]:
            sql = f"SELECT {_COLUMNS} FROM records WHERE kind = ? AND name >= ?"
            args: list[Any] = [kind, prefix]
            if after is not None:
                sql += " AND name > ?"
                args.append(after)
            end = prefix_end(prefix)
            if end is not None:
                sql += " AND name < ?"
                args.append(end)
            sql += " ORDER BY name LIMIT ?"
            args.append(limit)
            return [_row_to_record(row) for row in conn.execute(sql, args)]
        return await self._read(fn)


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with prefix (in code
    point order, which is SQLite's byte order for UTF-8), or None if there is none."""
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    nxt = ord(stripped[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be stored; skip past them
        nxt = 0xE000
    return stripped[:-1] + chr(nxt)


def _settle(fut: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)
