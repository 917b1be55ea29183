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
references, blocks known lost), kept current by the writer's tallies (tallies.py: changes
added up in memory in the transaction of each, folded into the table now and then, rebuilt
from the rows after a crash). Two replicas of a partition hold the same rows exactly when their digests
match (up to a 64-bit collision), so anti-entropy compares one number per partition and
looks closer only where the numbers differ.

Small bodies live in append-only segment files beside the database (segments.py), not in
their row: written once there instead of twice (WAL, checkpoint) with overflow pages. The
row names where the body is (seg, seg_off, seg_len) and its checksum covers value and
body as before; rows written before schema 4 keep their body in `data` and read as ever.
Compaction (repair/compaction.py) sums, now and then, the bytes rows still name per
segment to know which segments are mostly dead; no commit pays for keeping that count.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Sequence, TypeVar

import xxhash

from edgestore.errors import StoreError
from edgestore.store.counters import COUNTERS_FILL, COUNTERS_SCHEMA
from edgestore.store.groupcommit import Batcher
from edgestore.store.listing import LIVE_SQL, list_rows_json_sync, list_rows_sync, prefix_end
from edgestore.store.records import WRITTEN_TS, Record
from edgestore.store.segments import SegmentStore, SegmentSyncError
from edgestore.store.tallies import DIGESTS_FILL, V5_TRIGGERS, Tallies

__all__ = ["MetaStore", "BlockRef", "PartitionIndex", "row_hash", "prefix_end"]

T = TypeVar("T")
log = logging.getLogger(__name__)

# How long a write may wait for others to share its commit, when writes arrive faster
# than this (groupcommit.py): each commit rewrites a handful of shared pages.
GROUP_COMMIT_WINDOW_S = 0.050
# Bodies moved per commit by segment compaction: small enough not to hold up client writes.
COMPACT_BATCH = 64

SCHEMA_VERSION = 6
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
-- By partition only (databases made before version 4 have (part, kind, name), which works
-- alike): a new row's entry then goes at the end of its partition's run, not at a random
-- name's place, so a commit of many writes touches a page or two of this index, not one
-- per write. Queries that want name order sort a partition's rows.
CREATE INDEX IF NOT EXISTS records_by_part ON records (part);
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

# Blocks an overwrite or a delete leaves unreferenced become GC candidates; one that is a
# candidate already takes the later time, so that collection, which drops a candidate it
# found in use only if its time is still the one it read, looks at it again after this
# change. An UPSERT clause, not INSERT OR IGNORE: the merge's UPSERT would impose its own
# conflict policy (ABORT) on an OR clause in the trigger, failing every overwrite of an
# object whose blocks are candidates already (a copy's, or repeated blocks). Recreated at
# every open, so that databases made with the old triggers get these.
_GC_TRIGGERS = """
DROP TRIGGER IF EXISTS records_free_on_change;
DROP TRIGGER IF EXISTS records_free_on_drop;
CREATE TRIGGER records_free_on_change AFTER UPDATE ON records
WHEN json_type(OLD.value, '$.blocks') = 'array' BEGIN
    INSERT INTO gc_candidates
        SELECT json_extract(b.value, '$[0]'), NEW.ts FROM json_each(OLD.value, '$.blocks') AS b WHERE true
        ON CONFLICT (block) DO UPDATE SET ts = max(ts, excluded.ts);
END;
CREATE TRIGGER records_free_on_drop AFTER DELETE ON records
WHEN json_type(OLD.value, '$.blocks') = 'array' BEGIN
    INSERT INTO gc_candidates
        SELECT json_extract(b.value, '$[0]'), OLD.ts FROM json_each(OLD.value, '$.blocks') AS b WHERE true
        ON CONFLICT (block) DO UPDATE SET ts = max(ts, excluded.ts);
END;
"""

# The digests, kept by the writer's tallies (tallies.py).
_DIGESTS = """
CREATE TABLE IF NOT EXISTS part_digests (
    part INTEGER PRIMARY KEY,
    digest INTEGER NOT NULL,
    rows INTEGER NOT NULL
);
"""


# Version 4: bodies in segment files. ALTER TABLE ADD COLUMN rewrites no rows, so old
# databases upgrade at once and their inline bodies stay where they are.
_SEGMENT_COLUMNS = (
    "seg INTEGER",       # the body's segment file (NULL: the body is in `data`, or there is none)
    "seg_off INTEGER",
    "seg_len INTEGER",
)
_SEGMENTS = """
CREATE TABLE IF NOT EXISTS segments (  -- the segment files rows may name (others are leftovers of a crash)
    id INTEGER PRIMARY KEY,
    live INTEGER NOT NULL         -- unused since version 5 (always 0 in new rows): see segment_usage
);
"""
# Version 4 counted live bytes per segment by triggers: a page of `segments` rewritten by
# every commit, for a figure only compaction reads, every few minutes. It now sums them.
_SEGMENT_TRIGGERS_V4 = ("records_seg_add", "records_seg_change", "records_seg_drop")


def _segments_schema(conn: sqlite3.Connection) -> str:
    """The statements that give a records table its segment columns (those it lacks) and
    the table of known segments."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
    columns = "".join(f"ALTER TABLE records ADD COLUMN {c};" for c in _SEGMENT_COLUMNS if c.split()[0] not in have)
    return columns + _SEGMENTS


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
INSERT INTO records (kind, name, part, ts, node, deleted, value, data, check_xxh3, seg, seg_off, seg_len)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (kind, name) DO UPDATE SET
    part = excluded.part, ts = excluded.ts, node = excluded.node,
    deleted = excluded.deleted, value = excluded.value,
    data = excluded.data, check_xxh3 = excluded.check_xxh3,
    seg = excluded.seg, seg_off = excluded.seg_off, seg_len = excluded.seg_len
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
    # Small pages for a new database (an existing one keeps its own): every commit writes
    # each page it touched to the WAL, a handful of index and counter pages whatever the
    # batch, and with bodies in segments rows are a few hundred bytes. 1 KiB pages write a
    # quarter of the bytes of 4 KiB ones per commit (benchmarks/wa_breakdown.py).
    conn.execute("PRAGMA page_size=1024")
    conn.execute("PRAGMA journal_mode=WAL")
    # Checkpoint at about 4 MiB of WAL, as the default did with 4 KiB pages: a page written
    # by many commits in between goes to the database once per checkpoint.
    conn.execute("PRAGMA wal_autocheckpoint=4000")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    # A small page cache: a Pi has little RAM and the OS caches the file anyway.
    conn.execute("PRAGMA cache_size=-2048")
    return conn


def _fetch_row(conn: sqlite3.Connection, kind: str, name: str) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = conn.execute(
        f"SELECT {_COLUMNS}, data, check_xxh3, seg, seg_off, seg_len FROM records WHERE kind = ? AND name = ?",
        (kind, name)).fetchone()
    return row


def _row_intact(row: tuple[Any, ...], body: bytes | None) -> bool:
    """Does a row from _fetch_row, with its body, still match its checksum?"""
    return bool(row[7] == row_check(row[5], body))


def _row_to_record(row: tuple[Any, ...], data: bytes | None = None) -> Record:
    kind, name, ts, node, deleted, value = row[:6]
    return Record(kind=kind, name=name, ts=ts, node=node, deleted=bool(deleted),
                  value=json.loads(value), data=data)


# Buckets whose counters a store keeps read (a few dozen bytes each).
_MAX_COUNTED = 1024


@dataclass(frozen=True, slots=True)
class _CountedAt:
    """A bucket's counters as read on the writer, and what they stand for: no commit that
    changed rows since (`read_at`), and the time they were read for, up to the bucket's
    next expiry here (None: nothing of it expires)."""
    counted: tuple[int, int, int] | None
    read_at: int
    now: float
    next_expiry: int | None

    def holds(self, changes_committed: int, now: float) -> bool:
        return (changes_committed == self.read_at and self.now <= now
                and (self.next_expiry is None or now < self.next_expiry))


class MetaStore:
    """Records and block references of one device."""

    def __init__(self, path: Path, group_commit_window_s: float = GROUP_COMMIT_WINDOW_S) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Named after the database, so that moving "meta.db*" aside takes its bodies along.
        self.segments = SegmentStore(path.with_name(path.name + ".segments"))
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"meta-w-{path.parent.name}")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix=f"meta-r-{path.parent.name}")
        self._tallies: Tallies   # made by the writer's open, once the schema is current
        # Commits that changed rows, counted by the writer: what a cached bucket's counters
        # were read at (a Swift container GET reads them; each read is a writer-thread hop).
        self._changes_committed = 0
        self._counted: dict[str, _CountedAt] = {}
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
            conn.executescript(f"""BEGIN IMMEDIATE; {_DIGESTS} {COUNTERS_SCHEMA} {_segments_schema(conn)}
                INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;""")
            return self._finish_open_sync(conn)
        if int(row[0]) < 2:
            # Version 1 checked only inline data and had no digests: compute both once for
            # the rows already there, in the transaction that creates the triggers.
            conn.executescript(f"""BEGIN IMMEDIATE;
                ALTER TABLE records RENAME COLUMN data_xxh3 TO check_xxh3;
                UPDATE records SET check_xxh3 = es_rowcheck(value, data);
                DROP TABLE IF EXISTS part_digests;
                {_DIGESTS} {DIGESTS_FILL}
                INSERT OR REPLACE INTO meta VALUES ('schema_version', '2');
                COMMIT;""")
        if int(row[0]) < 3:
            # Version 2 had no bucket counters: count the rows already there once, in the
            # transaction that creates the triggers that keep them from then on.
            conn.executescript(f"""BEGIN IMMEDIATE; {COUNTERS_SCHEMA} {COUNTERS_FILL}
                INSERT OR REPLACE INTO meta VALUES ('schema_version', '3'); COMMIT;""")
        if int(row[0]) < 4:
            conn.executescript(f"""BEGIN IMMEDIATE; {_segments_schema(conn)}
                INSERT OR REPLACE INTO meta VALUES ('schema_version', '4'); COMMIT;""")
        if int(row[0]) < 5:
            drops = "".join(f"DROP TRIGGER IF EXISTS {name};" for name in _SEGMENT_TRIGGERS_V4)
            conn.executescript(f"""BEGIN IMMEDIATE; {drops}
                INSERT OR REPLACE INTO meta VALUES ('schema_version', '5'); COMMIT;""")
        if int(row[0]) < 6:
            # Digests and counters were kept by triggers of the database, which were current
            # up to here: from now on the writer's tallies keep them.
            drops = "".join(f"DROP TRIGGER IF EXISTS {name};" for name in V5_TRIGGERS)
            conn.executescript(f"""BEGIN IMMEDIATE; {drops}
                INSERT OR REPLACE INTO meta VALUES ('schema_version', '6'); COMMIT;""")
        return self._finish_open_sync(conn)

    def _finish_open_sync(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        conn.executescript(f"BEGIN IMMEDIATE; {_GC_TRIGGERS} COMMIT;")
        # A segment file the database does not know was made just before a crash, before
        # the commit of its first rows: nothing names its bytes. A known segment whose
        # file is gone with nothing left in it was unlinked by compaction before a crash.
        on_disk = set(self.segments.ids_on_disk())
        known = {seg for (seg,) in conn.execute("SELECT id FROM segments")}
        self.segments.forget_unknown(known)
        gone = known - on_disk
        if gone:   # rare (a crash just after an unlink): worth a scan of the rows
            gone -= {seg for (seg,) in conn.execute("SELECT DISTINCT seg FROM records WHERE seg IS NOT NULL")}
            conn.executemany("DELETE FROM segments WHERE id = ?", [(seg,) for seg in gone])
        self.segments.start_after(max(known | on_disk, default=0))
        self._tallies = Tallies(conn)
        return conn

    def close(self) -> None:
        self._writer.submit(self._close_writer_sync).result()
        self._reader.submit(self._rconn.close).result()
        self._lconn.close()
        self._writer.shutdown()
        self._reader.shutdown()
        self.segments.close()

    def _close_writer_sync(self) -> None:
        try:
            self._tallies.close(self._wconn)
        except sqlite3.Error as exc:   # the marker stays: the next open rebuilds the tallies
            log.warning("%s: pending digests and counters not written: %s", self.path, exc)
        self._wconn.close()

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
        changes_before = conn.total_changes
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, fut in batch:
                conn.execute("SAVEPOINT op")
                try:
                    results.append((fut, op(conn), None))
                    conn.execute("RELEASE op")
                except (sqlite3.Error, OSError) as exc:   # OSError: a body's append (a full disk)
                    # (Not SegmentSyncError: bodies of earlier ops may be lost with it.)
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((fut, None, StoreError(f"{self.path}: {exc}")))
            self._tallies.before_commit(conn, time.monotonic())
            self.segments.sync()   # the bodies the rows name are durable before the rows are
            conn.execute("COMMIT")
            self._tallies.committed()
        except (sqlite3.Error, OSError, SegmentSyncError) as exc:
            # A full disk fails the commit (SQLITE_FULL), or a statement, after which SQLite
            # may have rolled back already; a failed segment sync fails every op's rows.
            # Every waiter must still get its error: a ROLLBACK that fails too must not
            # leave their futures unsettled for ever.
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            err = StoreError(f"{self.path}: commit failed: {exc}")
            results = [(fut, None, err) for _, fut in batch]
            changes_before = -1
        if conn.total_changes != changes_before:   # (triggers' changes count too)
            self._changes_committed += 1   # before any waiter hears of the commit
        self._pending.done(len(batch))
        for fut, value, error in results:
            loop.call_soon_threadsafe(_settle, fut, value, error)

    async def merge(self, records: Iterable[tuple[Record, int]],
                    prior: dict[str, tuple[int, str, bool]] | None = None) -> dict[str, int]:
        """Merge (record, partition) pairs, last writer wins. Returns, for each record that
        lost to a newer stored version, that version's timestamp (by record name): the
        coordinator of a new write uses it to notice its clock is behind and write again.
        `prior`, if given, receives the version each record met here, replaced or not
        (name: (ts, node, live: neither a tombstone nor expired)): a Swift DELETE learns
        from it whether there was an object to delete without reading first."""
        rows = []
        for r, part in records:
            value = json.dumps(r.value, separators=(",", ":"))
            rows.append((r.kind, r.name, part, r.ts, r.node, int(r.deleted), value, r.data, row_check(value, r.data)))
        now = time.time()
        probe = f"SELECT ts, node, {LIVE_SQL} FROM records WHERE kind = ? AND name = ?" if prior is not None \
            else "SELECT ts, node FROM records WHERE kind = ? AND name = ?"

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            newer = {}
            for kind, name, part, ts, node, deleted, value, data, check in rows:
                stored = conn.execute(probe, (now, kind, name) if prior is not None else (kind, name)).fetchone()
                if stored is not None and prior is not None:
                    prior[name] = (int(stored[0]), str(stored[1]), bool(stored[2]))
                if stored is not None and (stored[0], stored[1]) >= (ts, node):
                    # Lost to (or is) the stored version: neither row nor body is written.
                    if (stored[0], stored[1]) > (ts, node):
                        newer[name] = int(stored[0])
                    continue
                seg = off = None
                if data:
                    seg, off = self._append_body(conn, data)
                conn.execute(_MERGE, (kind, name, part, ts, node, deleted, value, None if data else data, check,
                                      seg, off, len(data) if data else None))
            return newer

        # Patient: records are what small objects are made of, and they gain most from
        # sharing a commit.
        return await self._write(op, patient=True)

    async def add_block_refs(self, refs: Iterable[BlockRef], missing: Iterable[str] = (),
                             stored_now: bool = False) -> None:
        """Record references to blocks of this device. A referenced block whose file is
        not here (`missing`) is marked lost until the file arrives, so the partition's
        digest tells the peers that this device needs it; the others are marked found.
        A block `stored_now` becomes a GC candidate as of its reference's time: if the
        upload that sent it never writes its record (the client went away mid-body, the
        coordinator died), no overwrite or delete would ever free it."""
        rows = [(r.block, r.ref, r.part, r.ts) for r in refs]
        absent = set(missing)
        lost = {(block, part) for block, _, part, _ in rows if block in absent}
        found = {(block,) for block, *_ in rows if block not in absent}
        candidates = [(block, ts) for block, _, _, ts in rows] if stored_now else []

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT OR IGNORE INTO block_refs VALUES (?, ?, ?, ?)", rows)
            conn.executemany("INSERT INTO gc_candidates VALUES (?, ?) "
                             "ON CONFLICT (block) DO UPDATE SET ts = max(ts, excluded.ts)", candidates)
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

    def _append_body(self, conn: sqlite3.Connection, body: bytes) -> tuple[int, int]:
        """On the writer thread: a body appended to the active segment, which the
        database then knows (its live bytes count from the rows that name it)."""
        seg, off = self.segments.append(body)
        conn.execute("INSERT OR IGNORE INTO segments VALUES (?, 0)", (seg,))
        return seg, off

    # -- reads -------------------------------------------------------------------------

    def _load(self, conn: sqlite3.Connection, kind: str, name: str) -> tuple[tuple[Any, ...], bytes | None] | None:
        """A row (from _fetch_row) and its body, wherever it lives. A segment that is gone
        was compacted between the row's read and the body's: the row, read again, names
        the new place; gone still, the body reads as empty and fails its checksum."""
        for attempt in range(2):
            row = _fetch_row(conn, kind, name)
            if row is None:
                return None
            if row[8] is None:
                return row, row[6]
            try:
                return row, self.segments.read(row[8], row[9], row[10])
            except FileNotFoundError:
                if attempt:
                    return row, b""
        raise AssertionError("unreachable")


    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader, fn, self._rconn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    async def check(self, kind: str, name: str) -> tuple[Record | None, bool]:
        """A record (without data) and whether it still matches its checksum."""
        def fn(conn: sqlite3.Connection) -> tuple[Record | None, bool]:
            loaded = self._load(conn, kind, name)
            if loaded is None:
                return None, False
            row, body = loaded
            if not _row_intact(row, body):
                return Record(kind, name, row[2], row[3], bool(row[4])), False
            return _row_to_record(row), True
        return await self._read(fn)

    async def get(self, kind: str, name: str, with_data: bool = True) -> Record | None:
        """A record; one that fails its checksum raises StoreError (the coordinator then
        reads another replica, and scrub replaces this one)."""
        def fn(conn: sqlite3.Connection) -> Record | None:
            loaded = self._load(conn, kind, name)
            if loaded is None:
                return None
            row, body = loaded
            if not _row_intact(row, body):
                raise StoreError(f"{self.path}: {kind} {name!r} fails its checksum")
            return _row_to_record(row, body if with_data else None)
        return await self._point_read(fn)

    async def _point_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read of a row or two by key: on the loop's own connection, cheaper than a
        thread hop."""
        try:
            return fn(self._lconn)
        except sqlite3.OperationalError:
            return await self._read(fn)  # busy (a checkpoint, a recovery): not on the loop
        except (sqlite3.Error, OSError) as exc:  # a damaged file: this replica fails, as _read would say
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
                             fields: Sequence[str] = (), now: float = 0.0) -> bytes:
        """list_rows as JSON text (UTF-8), as a coordinator takes it."""
        return await self._read(lambda conn: list_rows_json_sync(conn, kind, prefix, after, limit, delimiter,
                                                                 fields, now))

    async def bucket_counters(self, bucket: str, now: float = 0.0) -> tuple[int, int, int] | None:
        """(objects, bytes, changed_ts) of a bucket ("account/bucket") here, if it has any rows;
        objects expired at `now` (unix seconds) left out. On the writer: the counters of
        the latest commits are still in its tallies. The figures last read stand until a
        commit changes rows or one of the bucket's objects expires."""
        cached = self._counted.get(bucket)
        if cached is not None and cached.holds(self._changes_committed, now):
            return cached.counted

        def fn(conn: sqlite3.Connection) -> _CountedAt:
            read_at = self._changes_committed   # (a batch that changes rows moves it on: this reading stands for none)
            counted = Tallies.counters(conn, bucket)
            if counted is None:
                return _CountedAt(None, read_at, now, None)
            expired_objects, expired_bytes, next_expiry = conn.execute(
                "SELECT coalesce(sum(objects) FILTER (WHERE delete_at <= ?2), 0),"
                " coalesce(sum(bytes) FILTER (WHERE delete_at <= ?2), 0), min(delete_at) FILTER (WHERE delete_at > ?2)"
                " FROM bucket_expiring WHERE bucket = ?1", (bucket, now)).fetchone()
            return _CountedAt((counted[0] - int(expired_objects), counted[1] - int(expired_bytes), counted[2]),
                              read_at, now, next_expiry)
        reading = await self._write(fn)
        if len(self._counted) >= _MAX_COUNTED:
            self._counted.clear()
        self._counted[bucket] = reading
        return reading.counted

    # -- partitions: what anti-entropy compares and moves ------------------------------

    async def digests(self) -> dict[int, tuple[int, int]]:
        """partition -> (digest, rows) for every partition with rows on this device. On
        the writer: the changes of the latest commits are still in its tallies."""
        return await self._write(Tallies.digests)

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
            moved: list[tuple[str, str]] = []
            size = 0
            for kind, name, value, data, check, seg, off, length in conn.execute(
                    "SELECT kind, name, value, data, check_xxh3, seg, seg_off, seg_len FROM records WHERE part = ?",
                    (part,)):
                if seg is not None:
                    try:
                        data = self.segments.read(seg, off, length)
                    except FileNotFoundError:
                        moved.append((kind, name))   # compacted meanwhile?
                        continue
                size += len(value) + len(data or b"")
                if check != row_check(value, data):
                    damaged.append((kind, name))
            # Only now, the scan's statement done: while it ran, every read saw its snapshot,
            # which still names the segment compaction unlinked.
            for kind, name in moved:
                loaded = self._load(conn, kind, name)
                if loaded is None:
                    continue
                size += len(loaded[0][5]) + len(loaded[1] or b"")
                if not _row_intact(*loaded):
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

    # -- segment compaction ----------------------------------------------------------------

    async def segment_usage(self) -> Sequence[tuple[int, int, int]]:
        """(segment, live bytes, file bytes) of every sealed segment. Live bytes are summed
        from the rows here, a scan of the table: compaction asks every few minutes, while
        a count kept by triggers cost every commit a page."""
        def fn(conn: sqlite3.Connection) -> list[tuple[int, int]]:
            live = dict(conn.execute("SELECT seg, sum(seg_len) FROM records WHERE seg IS NOT NULL GROUP BY seg"))
            return [(int(seg), int(live.get(seg, 0))) for (seg,) in conn.execute("SELECT id FROM segments ORDER BY id")]
        active = self.segments.active
        return [(seg, live, self.segments.size(seg)) for seg, live in await self._read(fn) if seg != active]

    async def compact_segment(self, seg: int, pace: Callable[[int], Awaitable[None]],
                              batch: int = COMPACT_BATCH) -> int:
        """Copy the live bodies of a sealed segment to the active one, repoint their rows,
        and unlink the segment once nothing names it. A body that fails its checksum stays
        (the segment with it): scrub replaces that record. `pace(bytes)` is awaited before
        each batch is copied. Returns the bytes copied."""
        def named(conn: sqlite3.Connection) -> list[tuple[str, str, int, int]]:
            # A full scan, not an index on seg: an index would cost a page per commit of
            # every write, this costs reads now and then.
            return conn.execute("SELECT kind, name, seg_off, seg_len FROM records WHERE seg = ?", (seg,)).fetchall()

        def sealed() -> bool:
            # On the writer thread, the only one that rolls: the usage read on the loop may
            # have been overtaken by a roll that made this segment (or a newer) the active one.
            active = self.segments.active
            return active is None or seg < active

        def move(rows: list[tuple[str, str, int, int]]) -> Callable[[sqlite3.Connection], int]:
            def op(conn: sqlite3.Connection) -> int:
                copied = 0
                if not sealed():
                    return copied
                for kind, name, off, length in rows:
                    current = conn.execute("SELECT value, check_xxh3 FROM records WHERE kind = ? AND name = ? "
                                           "AND seg = ? AND seg_off = ?", (kind, name, seg, off)).fetchone()
                    if current is None:
                        continue   # overwritten or deleted since
                    try:
                        body = self.segments.read(seg, off, length)
                    except FileNotFoundError:
                        continue   # the file is lost: scrub finds the rows damaged and replaces them
                    if current[1] != row_check(current[0], body):
                        continue
                    new_seg, new_off = self._append_body(conn, body)
                    conn.execute("UPDATE records SET seg = ?, seg_off = ? WHERE kind = ? AND name = ?",
                                 (new_seg, new_off, kind, name))
                    copied += length
                return copied
            return op

        rows = await self._read(named)
        copied = 0
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            await pace(sum(length for *_, length in chunk))
            copied += await self._write(move(chunk), patient=True)

        # Rows never come to name a sealed segment, so those listed above are the only ones
        # that may still name it (a body whose copy was skipped): no scan of the table.
        def drop(conn: sqlite3.Connection) -> bool:
            if not sealed() or any(conn.execute("SELECT 1 FROM records WHERE kind = ? AND name = ? AND seg = ?",
                                                (kind, name, seg)).fetchone() for kind, name, *_ in rows):
                return False
            return conn.execute("DELETE FROM segments WHERE id = ?", (seg,)).rowcount > 0
        if await self._write(drop):
            self.segments.unlink(seg)   # after the commit: no row names it, even after a crash
        return copied

    # -- garbage collection --------------------------------------------------------------

    async def gc_candidates(self, before_ts: int, limit: int = 1000) -> Sequence[tuple[str, int]]:
        """(block, time) of blocks that a change older than `before_ts` may have freed (a
        record that listed them was overwritten or deleted, or they were just stored)."""
        def fn(conn: sqlite3.Connection) -> Sequence[tuple[str, int]]:
            return list(conn.execute("SELECT block, ts FROM gc_candidates WHERE ts < ? ORDER BY ts LIMIT ?",
                                     (before_ts, limit)))
        return await self._read(fn)

    async def drop_gc_candidates(self, candidates: Iterable[tuple[str, int]]) -> None:
        """Forget candidates decided on — each only if no change made it a candidate again
        (a later time) meanwhile."""
        rows = list(candidates)
        await self._write(lambda conn: conn.executemany("DELETE FROM gc_candidates WHERE block = ? AND ts = ?", rows))

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
        """Delete tombstones older than the reclaim age — by when they were written
        (WRITTEN_TS) if stamped in the past. Kept: a multipart part's tombstone naming the
        object that took its blocks over (collection follows it)."""
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM records WHERE deleted = 1 AND ts < ? "
                                "AND json_extract(value, '$.completed_into') IS NULL "
                                f"AND coalesce(json_extract(value, '$.{WRITTEN_TS}'), ts) < ?",
                                (before_ts, before_ts)).rowcount
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
                loaded = self._load(conn, kind, name)
                if loaded is not None and _row_intact(*loaded):
                    found.append(_row_to_record(*loaded))
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
