"""The metadata store of one device: one SQLite database (WAL), rows keyed by partition.

Writes go to one writer thread that applies every write queued since its last commit in
a single transaction, so many concurrent writes share one fsync and one copy of the pages
they touch (group commit; when writes overlap it waits a moment for more, see
groupcommit.py); a write's future resolves only after its commit is durable
(synchronous=FULL). Reads use a second connection on their own thread: WAL lets them
proceed while the writer commits. The one exception is the point read of one record by its
key (`get`), the read every request makes: it runs on the event loop's own connection,
because handing it to a thread and back costs several times the B-tree lookup itself;
should the database be busy, it goes to the reader thread after all rather than wait on
the loop.

Every partition has a digest: the XOR of a hash of each of its rows (records, block
references, blocks known lost), kept current by triggers inside the same transaction as
the change. Two replicas of a partition hold the same rows exactly when their digests
match (up to a 64-bit collision), so anti-entropy compares one number per partition and
looks closer only where the numbers differ.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import xxhash

from edgestore.errors import StoreError
from edgestore.store.counters import COUNTERS_FILL, COUNTERS_SCHEMA
from edgestore.store.groupcommit import Batcher
from edgestore.store.listing import list_rows_json_sync, list_rows_sync, prefix_end
from edgestore.store.records import Record

__all__ = ["MetaStore", "BlockRef", "PartitionIndex", "row_hash", "prefix_end"]

T = TypeVar("T")

# How long a write may wait for others to share its commit, when writes arrive faster
# than this (groupcommit.py): each commit rewrites a handful of shared pages.
GROUP_COMMIT_WINDOW_S = 0.050

SCHEMA_VERSION = 3
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
    check_xxh3 INTEGER NOT NULL, -- checksum of value and data (row_check), re-verified on read and by scrub
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
CREATE TABLE IF NOT EXISTS gc_candidates (  -- blocks an overwrite or delete may have freed
    block TEXT PRIMARY KEY,
    ts INTEGER NOT NULL           -- when (the change's timestamp)
);
CREATE TABLE IF NOT EXISTS lost_blocks (   -- referenced here, but the file is missing or rotten
    block TEXT PRIMARY KEY,
    part INTEGER NOT NULL
);
"""

# Blocks an overwrite or a delete leaves unreferenced become GC candidates. ON CONFLICT DO
# NOTHING, not INSERT OR IGNORE: the merge's UPSERT would impose its own conflict policy
# (ABORT) on an OR clause in the trigger, failing every overwrite of an object whose blocks
# are candidates already (a copy's, or repeated blocks). Recreated at every open, so that
# databases made with the old triggers get these.
_GC_TRIGGERS = """
DROP TRIGGER IF EXISTS records_free_on_change;
DROP TRIGGER IF EXISTS records_free_on_drop;
CREATE TRIGGER records_free_on_change AFTER UPDATE ON records
WHEN json_type(OLD.value, '$.blocks') = 'array' BEGIN
    INSERT INTO gc_candidates
        SELECT json_extract(b.value, '$[0]'), NEW.ts FROM json_each(OLD.value, '$.blocks') AS b WHERE true
        ON CONFLICT (block) DO NOTHING;
END;
CREATE TRIGGER records_free_on_drop AFTER DELETE ON records
WHEN json_type(OLD.value, '$.blocks') = 'array' BEGIN
    INSERT INTO gc_candidates
        SELECT json_extract(b.value, '$[0]'), OLD.ts FROM json_each(OLD.value, '$.blocks') AS b WHERE true
        ON CONFLICT (block) DO NOTHING;
END;
"""

# The digests and the triggers that keep them. XOR is (a | b) - (a & b): SQLite has no
# XOR operator, and this form never overflows a signed 64-bit integer.
_DIGESTS = """
CREATE TABLE IF NOT EXISTS part_digests (
    part INTEGER PRIMARY KEY,
    digest INTEGER NOT NULL,
    rows INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS records_digest_add AFTER INSERT ON records BEGIN
    INSERT INTO part_digests VALUES (NEW.part, es_rowhash('r', NEW.kind, NEW.name, NEW.ts, NEW.node, NEW.deleted), 1)
    ON CONFLICT (part) DO UPDATE SET digest = (digest | excluded.digest) - (digest & excluded.digest),
                                     rows = rows + 1;
END;
CREATE TRIGGER IF NOT EXISTS records_digest_change AFTER UPDATE ON records BEGIN
    UPDATE part_digests SET rows = rows - 1, digest = (digest | es_rowhash('r', OLD.kind, OLD.name, OLD.ts, OLD.node,
        OLD.deleted)) - (digest & es_rowhash('r', OLD.kind, OLD.name, OLD.ts, OLD.node, OLD.deleted))
    WHERE part = OLD.part;
    INSERT INTO part_digests VALUES (NEW.part, es_rowhash('r', NEW.kind, NEW.name, NEW.ts, NEW.node, NEW.deleted), 1)
    ON CONFLICT (part) DO UPDATE SET digest = (digest | excluded.digest) - (digest & excluded.digest),
                                     rows = rows + 1;
END;
CREATE TRIGGER IF NOT EXISTS records_digest_drop AFTER DELETE ON records BEGIN
    UPDATE part_digests SET rows = rows - 1, digest = (digest | es_rowhash('r', OLD.kind, OLD.name, OLD.ts, OLD.node,
        OLD.deleted)) - (digest & es_rowhash('r', OLD.kind, OLD.name, OLD.ts, OLD.node, OLD.deleted))
    WHERE part = OLD.part;
END;
CREATE TRIGGER IF NOT EXISTS refs_digest_add AFTER INSERT ON block_refs BEGIN
    INSERT INTO part_digests VALUES (NEW.part, es_rowhash('b', NEW.block, NEW.ref), 1)
    ON CONFLICT (part) DO UPDATE SET digest = (digest | excluded.digest) - (digest & excluded.digest),
                                     rows = rows + 1;
END;
CREATE TRIGGER IF NOT EXISTS refs_digest_drop AFTER DELETE ON block_refs BEGIN
    UPDATE part_digests SET rows = rows - 1, digest = (digest | es_rowhash('b', OLD.block, OLD.ref))
        - (digest & es_rowhash('b', OLD.block, OLD.ref))
    WHERE part = OLD.part;
END;
CREATE TRIGGER IF NOT EXISTS lost_digest_add AFTER INSERT ON lost_blocks BEGIN
    INSERT INTO part_digests VALUES (NEW.part, es_rowhash('l', NEW.block), 1)
    ON CONFLICT (part) DO UPDATE SET digest = (digest | excluded.digest) - (digest & excluded.digest),
                                     rows = rows + 1;
END;
CREATE TRIGGER IF NOT EXISTS lost_digest_drop AFTER DELETE ON lost_blocks BEGIN
    UPDATE part_digests SET rows = rows - 1, digest = (digest | es_rowhash('l', OLD.block))
        - (digest & es_rowhash('l', OLD.block))
    WHERE part = OLD.part;
END;
"""


def row_check(value: str, data: bytes | None) -> int:
    """The checksum of a record row's content: SQLite keeps no checksums of its own, and a
    flipped bit in a value or in inline data must be caught, not served."""
    return xxhash.xxh3_64_intdigest(value.encode() + b"\x00" + (data or b"")) - (1 << 63)


def row_hash(*fields: Any) -> int:
    """The digest contribution of one row, as a signed 64-bit integer (SQLite's)."""
    return xxhash.xxh3_64_intdigest("\x00".join(str(f) for f in fields).encode()) - (1 << 63)

# Last writer wins, in SQL: an incoming row replaces the stored one only if its
# (ts, node) is larger, so applying the same record twice or out of order is harmless.
_MERGE = """
INSERT INTO records (kind, name, part, ts, node, deleted, value, data, check_xxh3)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (kind, name) DO UPDATE SET
    part = excluded.part, ts = excluded.ts, node = excluded.node,
    deleted = excluded.deleted, value = excluded.value,
    data = excluded.data, check_xxh3 = excluded.check_xxh3
WHERE excluded.ts > records.ts OR (excluded.ts = records.ts AND excluded.node > records.node)
"""

_COLUMNS = "kind, name, ts, node, deleted, value"


class _XorAggregate:
    def __init__(self) -> None:
        self.value = 0

    def step(self, h: int) -> None:
        self.value ^= h

    def finalize(self) -> int:
        return self.value


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.create_function("es_rowhash", -1, row_hash, deterministic=True)
    conn.create_aggregate("es_xor", 1, _XorAggregate)
    conn.create_function("es_rowcheck", 2, row_check, deterministic=True)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    # A small page cache: a Pi has little RAM and the OS caches the file anyway.
    conn.execute("PRAGMA cache_size=-2048")
    return conn


def _fetch_row(conn: sqlite3.Connection, kind: str, name: str) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = conn.execute(
        f"SELECT {_COLUMNS}, data, check_xxh3 FROM records WHERE kind = ? AND name = ?", (kind, name)).fetchone()
    return row


def _row_intact(row: tuple[Any, ...]) -> bool:
    """Does a row from _fetch_row still match its checksum?"""
    return bool(row[7] == row_check(row[5], row[6]))


def _row_to_record(row: tuple[Any, ...], data: bytes | None = None) -> Record:
    kind, name, ts, node, deleted, value = row[:6]
    return Record(kind=kind, name=name, ts=ts, node=node, deleted=bool(deleted),
                  value=json.loads(value), data=data)


class MetaStore:
    """Records and block references of one device."""

    def __init__(self, path: Path, group_commit_window_s: float = GROUP_COMMIT_WINDOW_S) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"meta-w-{path.parent.name}")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix=f"meta-r-{path.parent.name}")
        self._wconn = self._writer.submit(self._open_writer_sync).result()
        self._rconn = self._reader.submit(_connect, path).result()
        self._lconn = _connect(path)  # the event loop's, for point reads only
        self._lconn.execute("PRAGMA busy_timeout=0")  # busy: hand the read to the thread instead
        self._pending: Batcher[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = \
            Batcher(group_commit_window_s)

    def _open_writer_sync(self) -> sqlite3.Connection:
        conn = _connect(self.path)
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema {row[0]}, newer than this edgestore knows")
        if row is None:
            conn.executescript(f"""BEGIN IMMEDIATE; {_DIGESTS} {COUNTERS_SCHEMA}
                INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;""")
            return self._finish_open_sync(conn)
        if int(row[0]) < 2:
            # Version 1 checked only inline data and had no digests: compute both once for
            # the rows already there, in the transaction that creates the triggers.
            conn.executescript(f"""BEGIN IMMEDIATE;
                ALTER TABLE records RENAME COLUMN data_xxh3 TO check_xxh3;
                UPDATE records SET check_xxh3 = es_rowcheck(value, data);
                DROP TABLE IF EXISTS part_digests;
                {_DIGESTS}
                INSERT INTO part_digests SELECT part, es_xor(h), count(*) FROM (
                    SELECT part, es_rowhash('r', kind, name, ts, node, deleted) AS h FROM records
                    UNION ALL SELECT part, es_rowhash('b', block, ref) FROM block_refs
                    UNION ALL SELECT part, es_rowhash('l', block) FROM lost_blocks) GROUP BY part;
                INSERT OR REPLACE INTO meta VALUES ('schema_version', '2');
                COMMIT;""")
        if int(row[0]) < 3:
            # Version 2 had no bucket counters: count the rows already there once, in the
            # transaction that creates the triggers that keep them from then on.
            conn.executescript(f"""BEGIN IMMEDIATE; {COUNTERS_SCHEMA} {COUNTERS_FILL}
                INSERT OR REPLACE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;""")
        return self._finish_open_sync(conn)

    def _finish_open_sync(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        conn.executescript(f"BEGIN IMMEDIATE; {_GC_TRIGGERS} COMMIT;")
        return conn

    def close(self) -> None:
        self._writer.submit(self._wconn.close).result()
        self._reader.submit(self._rconn.close).result()
        self._lconn.close()
        self._writer.shutdown()
        self._reader.shutdown()

    # -- writes: queued, group-committed -------------------------------------------

    async def _write(self, op: Callable[[sqlite3.Connection], T], patient: bool = False) -> T:
        """Run op in the next group commit; `patient` lets it wait for others to share it."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        if self._pending.add((op, fut), patient):
            self._writer.submit(self._flush_sync, loop)
        return await fut

    def _flush_sync(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.take()
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
            # A full disk fails the commit (SQLITE_FULL), or a statement, after which SQLite
            # may have rolled back already. Every waiter must still get its error: a
            # ROLLBACK that fails too must not leave their futures unsettled for ever.
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            err = StoreError(f"{self.path}: commit failed: {exc}")
            results = [(fut, None, err) for _, fut in batch]
        self._pending.done(len(batch))
        for fut, value, error in results:
            loop.call_soon_threadsafe(_settle, fut, value, error)

    async def merge(self, records: Iterable[tuple[Record, int]]) -> dict[str, int]:
        """Merge (record, partition) pairs, last writer wins. Returns, for each record that
        lost to a newer stored version, that version's timestamp (by record name): the
        coordinator of a new write uses it to notice its clock is behind and write again."""
        rows = []
        for r, part in records:
            value = json.dumps(r.value, separators=(",", ":"))
            rows.append((r.kind, r.name, part, r.ts, r.node, int(r.deleted), value, r.data, row_check(value, r.data)))

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            conn.executemany(_MERGE, rows)
            newer = {}
            for kind, name, _, ts, node, *_rest in rows:
                stored = conn.execute("SELECT ts, node FROM records WHERE kind = ? AND name = ?",
                                      (kind, name)).fetchone()
                if stored is not None and (stored[0], stored[1]) > (ts, node):
                    newer[name] = int(stored[0])
            return newer

        # Patient: records are what small objects are made of, and they gain most from
        # sharing a commit.
        return await self._write(op, patient=True)

    async def add_block_refs(self, refs: Iterable[BlockRef], missing: Iterable[str] = ()) -> None:
        """Record references to blocks of this device. A referenced block whose file is
        not here (`missing`) is marked lost until the file arrives, so the partition's
        digest tells the peers that this device needs it; the others are marked found."""
        rows = [(r.block, r.ref, r.part, r.ts) for r in refs]
        absent = set(missing)
        lost = {(block, part) for block, _, part, _ in rows if block in absent}
        found = {(block,) for block, *_ in rows if block not in absent}

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT OR IGNORE INTO block_refs VALUES (?, ?, ?, ?)", rows)
            conn.executemany("INSERT OR IGNORE INTO lost_blocks VALUES (?, ?)", lost)
            conn.executemany("DELETE FROM lost_blocks WHERE block = ?", found)
        await self._write(op)

    async def add_block_ref(self, block: str, ref: str, part: int, ts: int) -> None:
        await self.add_block_refs([BlockRef(block, ref, part, ts)])

    async def set_lost(self, blocks: Iterable[tuple[str, int]], lost: bool) -> None:
        """Mark blocks (block, partition) lost (a scrub or read found the file missing or
        rotten) or found again."""
        rows = list(blocks)

        def op(conn: sqlite3.Connection) -> None:
            if lost:
                conn.executemany("INSERT OR IGNORE INTO lost_blocks VALUES (?, ?)", rows)
            else:
                conn.executemany("DELETE FROM lost_blocks WHERE block = ?", [(b,) for b, _ in rows])
        await self._write(op)

    async def drop_partition_rows(self, part: int, records: Iterable[tuple[str, str, int, str]],
                                  refs: Iterable[tuple[str, str]]) -> None:
        """Forget rows of a partition this device no longer holds (a handoff that handed
        it back): each record only in the version given, so a newer write that arrived
        meanwhile stays until it too has been handed on."""
        record_rows = [(kind, name, ts, node, part) for kind, name, ts, node in records]
        ref_rows = [(block, ref, part) for block, ref in refs]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM records WHERE kind = ? AND name = ? AND ts = ? AND node = ? AND part = ?",
                             record_rows)
            conn.executemany("DELETE FROM block_refs WHERE block = ? AND ref = ? AND part = ?", ref_rows)
            conn.execute("DELETE FROM lost_blocks WHERE part = ? AND block NOT IN "
                         "(SELECT block FROM block_refs WHERE part = ?)", (part, part))
        await self._write(op)

    # -- reads -------------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader, fn, self._rconn)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    async def check(self, kind: str, name: str) -> tuple[Record | None, bool]:
        """A record (without data) and whether it still matches its checksum."""
        def fn(conn: sqlite3.Connection) -> tuple[Record | None, bool]:
            row = _fetch_row(conn, kind, name)
            if row is None:
                return None, False
            if not _row_intact(row):
                return Record(kind, name, row[2], row[3], bool(row[4])), False
            return _row_to_record(row), True
        return await self._read(fn)

    async def get(self, kind: str, name: str, with_data: bool = True) -> Record | None:
        """A record; one that fails its checksum raises StoreError (the coordinator then
        reads another replica, and scrub replaces this one)."""
        def fn(conn: sqlite3.Connection) -> Record | None:
            row = _fetch_row(conn, kind, name)
            if row is None:
                return None
            if not _row_intact(row):
                raise StoreError(f"{self.path}: {kind} {name!r} fails its checksum")
            return _row_to_record(row, row[6] if with_data else None)
        try:
            return fn(self._lconn)  # one primary-key lookup: cheaper here than a thread hop
        except sqlite3.OperationalError:
            return await self._read(fn)  # busy (a checkpoint, a recovery): not on the loop
        except sqlite3.Error as exc:  # a damaged file: this replica fails, as _read would say
            raise StoreError(f"{self.path}: {exc}") from exc

    async def list_rows(self, kind: str, prefix: str, after: str | None, limit: int, delimiter: str = "",
                        fields: Sequence[str] = (), now: float = 0.0) -> list[list[Any]]:
        """A lean listing page, common prefixes rolled up (see store/listing.py)."""
        return await self._read(lambda conn: list_rows_sync(conn, kind, prefix, after, limit, delimiter,
                                                            fields, now))

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

    async def list_rows_json(self, kind: str, prefix: str, after: str | None, limit: int, delimiter: str = "",
                             fields: Sequence[str] = (), now: float = 0.0) -> str:
        """list_rows as JSON text, for a peer."""
        return await self._read(lambda conn: list_rows_json_sync(conn, kind, prefix, after, limit, delimiter,
                                                                 fields, now))

    async def bucket_counters(self, bucket: str, now: float = 0.0) -> tuple[int, int, int] | None:
        """(objects, bytes, changed_ts) of a bucket ("account/bucket") here, if it has any rows;
        objects expired at `now` (unix seconds) left out."""
        def fn(conn: sqlite3.Connection) -> tuple[int, int, int] | None:
            row = conn.execute("SELECT objects, bytes, changed_ts FROM bucket_counters WHERE bucket = ?",
                               (bucket,)).fetchone()
            if row is None:
                return None
            expired = conn.execute("SELECT coalesce(sum(objects), 0), coalesce(sum(bytes), 0) FROM bucket_expiring "
                                   "WHERE bucket = ? AND delete_at <= ?", (bucket, now)).fetchone()
            return (int(row[0]) - int(expired[0]), int(row[1]) - int(expired[1]), int(row[2]))
        return await self._read(fn)


    # -- partitions: what anti-entropy compares and moves ------------------------------

    async def digests(self) -> dict[int, tuple[int, int]]:
        """partition -> (digest, rows) for every partition with rows on this device."""
        def fn(conn: sqlite3.Connection) -> dict[int, tuple[int, int]]:
            return {part: (digest, rows) for part, digest, rows
                    in conn.execute("SELECT part, digest, rows FROM part_digests WHERE rows > 0")}
        return await self._read(fn)

    async def partition_index(self, part: int) -> PartitionIndex:
        """Every row of a partition, without values or data: what a peer compares against."""
        def fn(conn: sqlite3.Connection) -> PartitionIndex:
            records = [(kind, name, ts, node, bool(deleted)) for kind, name, ts, node, deleted in conn.execute(
                "SELECT kind, name, ts, node, deleted FROM records WHERE part = ? ORDER BY kind, name", (part,))]
            refs = [(block, ref, ts) for block, ref, ts in conn.execute(
                "SELECT block, ref, ts FROM block_refs WHERE part = ? ORDER BY block, ref", (part,))]
            lost = [block for (block,) in conn.execute("SELECT block FROM lost_blocks WHERE part = ?", (part,))]
            return PartitionIndex(records, refs, lost)
        return await self._read(fn)

    async def damaged_rows(self, part: int) -> tuple[Sequence[tuple[str, str]], int]:
        """The records of a partition that fail their checksum, and the bytes read to know."""
        def fn(conn: sqlite3.Connection) -> tuple[Sequence[tuple[str, str]], int]:
            damaged: list[tuple[str, str]] = []
            size = 0
            for kind, name, value, data, check in conn.execute(
                    "SELECT kind, name, value, data, check_xxh3 FROM records WHERE part = ?", (part,)):
                size += len(value) + len(data or b"")
                if check != row_check(value, data):
                    damaged.append((kind, name))
            return damaged, size
        return await self._read(fn)

    async def remove_rows(self, keys: Iterable[tuple[str, str]]) -> None:
        """Drop damaged records: the partition's digest then differs from its replicas', and
        anti-entropy (or the scrub's own read) brings a good copy back."""
        rows = list(keys)
        await self._write(lambda conn: conn.executemany("DELETE FROM records WHERE kind = ? AND name = ?", rows))

    async def integrity_problems(self) -> Sequence[str]:
        """SQLite's own structural check of the database file (PRAGMA quick_check)."""
        def fn(conn: sqlite3.Connection) -> Sequence[str]:
            return [str(row[0]) for row in conn.execute("PRAGMA quick_check") if row[0] != "ok"]
        return await self._read(fn)

    # -- garbage collection --------------------------------------------------------------

    async def gc_candidates(self, before_ts: int, limit: int = 1000) -> Sequence[str]:
        """Blocks that a change older than `before_ts` may have freed (a record that listed
        them was overwritten or deleted)."""
        def fn(conn: sqlite3.Connection) -> Sequence[str]:
            return [b for (b,) in conn.execute("SELECT block FROM gc_candidates WHERE ts < ? ORDER BY ts LIMIT ?",
                                               (before_ts, limit))]
        return await self._read(fn)

    async def drop_gc_candidates(self, blocks: Iterable[str]) -> None:
        rows = [(b,) for b in blocks]
        await self._write(lambda conn: conn.executemany("DELETE FROM gc_candidates WHERE block = ?", rows))

    async def block_refs(self, block: str) -> Sequence[tuple[str, int]]:
        """(ref, ts) of every reference to a block on this device."""
        def fn(conn: sqlite3.Connection) -> Sequence[tuple[str, int]]:
            return [(r, t) for r, t in conn.execute("SELECT ref, ts FROM block_refs WHERE block = ?", (block,))]
        return await self._read(fn)

    async def collect_block(self, block: str, dead_refs: Iterable[str]) -> bool:
        """Forget a block whose every reference was found dead: only if this device knows no
        other reference to it (one that arrived since would keep it). True if forgotten."""
        dead = set(dead_refs)

        def op(conn: sqlite3.Connection) -> bool:
            refs = {r for (r,) in conn.execute("SELECT ref FROM block_refs WHERE block = ?", (block,))}
            if not refs <= dead:
                return False
            conn.execute("DELETE FROM block_refs WHERE block = ?", (block,))
            conn.execute("DELETE FROM lost_blocks WHERE block = ?", (block,))
            return True
        return await self._write(op)

    async def reclaim_tombstones(self, before_ts: int) -> int:
        """Delete tombstones older than the reclaim age. Kept: a multipart part's tombstone
        naming the object that took its blocks over (collection follows it)."""
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM records WHERE deleted = 1 AND ts < ? "
                                "AND json_extract(value, '$.completed_into') IS NULL", (before_ts,)).rowcount
        return await self._write(op)

    async def lost_count(self) -> int:
        return await self._read(lambda conn: int(conn.execute("SELECT count(*) FROM lost_blocks").fetchone()[0]))

    async def unreferenced(self, blocks: Iterable[str]) -> set[str]:
        """Those of `blocks` that no reference on this device names."""
        wanted = set(blocks)

        def fn(conn: sqlite3.Connection) -> set[str]:
            return {b for b in wanted
                    if conn.execute("SELECT 1 FROM block_refs WHERE block = ? LIMIT 1", (b,)).fetchone() is None}
        return await self._read(fn)

    async def records_by_key(self, keys: Iterable[tuple[str, str]]) -> Sequence[Record]:
        """The named records with their inline data (checked), for shipping to a peer;
        a record whose data fails its checksum is left out (scrub deals with it)."""
        wanted = list(keys)

        def fn(conn: sqlite3.Connection) -> list[Record]:
            found = []
            for kind, name in wanted:
                row = _fetch_row(conn, kind, name)
                if row is not None and _row_intact(row):
                    found.append(_row_to_record(row, row[6]))
            return found
        return await self._read(fn)


@dataclass(frozen=True)
class BlockRef:
    block: str
    ref: str    # the record version ("name#data_id") that uses the block
    part: int   # the block's partition
    ts: int


@dataclass
class PartitionIndex:
    records: list[tuple[str, str, int, str, bool]]   # kind, name, ts, node, deleted
    refs: list[tuple[str, str, int]]                  # block, ref, ts
    lost: list[str]                                   # blocks referenced here whose file is missing

    def to_wire(self) -> dict[str, Any]:
        return {"records": self.records, "refs": self.refs, "lost": self.lost}

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> PartitionIndex:
        return cls([(str(k), str(n), int(t), str(o), bool(d)) for k, n, t, o, d in wire["records"]],
                   [(str(b), str(r), int(t)) for b, r, t in wire["refs"]], [str(b) for b in wire["lost"]])


def _settle(fut: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)
