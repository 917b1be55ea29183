"""Partition digests and bucket counters between folds: changes tallied in memory, written
to the database now and then, rebuilt from the rows after a crash.

Kept by triggers on the database tables, every commit rewrote a page of `part_digests` and
one of `bucket_counters` (two of about fifteen WAL frames a commit of small objects carry,
then again at checkpoint). Here the triggers are TEMP ones of the writer's connection that
add each change to TEMP tables (memory only): the same transaction as the change, so a
rolled back write leaves no trace in them either. Every `FOLD_INTERVAL_S`, and at close,
a commit adds those deltas into the persistent tables and empties them.

Crash safety: the first commit that leaves deltas behind also writes a marker row in
`meta`, in the same transaction; the fold deletes it in its own. A database opened with
the marker present lost deltas with the process (SIGKILL, power cut): both tables are
then computed again from the rows, before any write. Readers that want the current
figures read the persistent table and the deltas together, on the writer's connection.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from edgestore.store.counters import COUNTERS_FILL, count_triggers

__all__ = ["Tallies", "FOLD_INTERVAL_S", "DIGESTS_FILL", "V5_TRIGGERS"]

# How long deltas stay in memory: each fold rewrites the pages of the partitions and
# buckets changed since the last, once instead of once per commit.
FOLD_INTERVAL_S = 30.0
_MARKER = "tallies_pending"

# The persistent triggers of schema 5 and before, which these replace.
V5_TRIGGERS = ("records_digest_add", "records_digest_change", "records_digest_drop", "refs_digest_add",
               "refs_digest_drop", "lost_digest_add", "lost_digest_drop", "records_count_add",
               "records_count_change", "records_count_drop")

# Digests of the rows there, for a database that has none or lost some deltas.
DIGESTS_FILL = """
DELETE FROM part_digests;
INSERT INTO part_digests SELECT part, es_xor(h), count(*) FROM (
    SELECT part, es_rowhash('r', kind, name, ts, node, deleted) AS h FROM records
    UNION ALL SELECT part, es_rowhash('b', block, ref) FROM block_refs
    UNION ALL SELECT part, es_rowhash('l', block) FROM lost_blocks) GROUP BY part;
"""

# XOR is (a | b) - (a & b): SQLite has no XOR operator, and this form never overflows a
# signed 64-bit integer. XOR is its own inverse, so a row leaving adds its hash too.
_XOR = "(digest | excluded.digest) - (digest & excluded.digest)"
_TALLY = """INSERT INTO digest_delta VALUES ({part}, es_rowhash({fields}), {sign})
    ON CONFLICT (part) DO UPDATE SET digest = """ + _XOR + """, rows = rows + excluded.rows;"""
_RECORD = "'r', {r}.kind, {r}.name, {r}.ts, {r}.node, {r}.deleted"


def _tally(row: str, fields: str, sign: int) -> str:
    return _TALLY.format(part=f"{row}.part", fields=fields.format(r=row), sign=sign)


def _added_and_dropped(name: str, table: str, fields: str) -> str:
    """Triggers for a table whose rows are only inserted and deleted."""
    return f"""
CREATE TEMP TRIGGER IF NOT EXISTS tally_{name}_add AFTER INSERT ON main.{table} BEGIN
    {_tally("NEW", fields, 1)}
END;
CREATE TEMP TRIGGER IF NOT EXISTS tally_{name}_drop AFTER DELETE ON main.{table} BEGIN
    {_tally("OLD", fields, -1)}
END;"""


_TEMP = f"""
PRAGMA temp_store = MEMORY;
CREATE TEMP TABLE IF NOT EXISTS digest_delta (part INTEGER PRIMARY KEY, digest INTEGER NOT NULL,
                                               rows INTEGER NOT NULL);
CREATE TEMP TABLE IF NOT EXISTS counter_delta (bucket TEXT PRIMARY KEY, objects INTEGER NOT NULL,
                                                bytes INTEGER NOT NULL, changed_ts INTEGER NOT NULL);
CREATE TEMP TRIGGER IF NOT EXISTS tally_records_add AFTER INSERT ON main.records BEGIN
    {_tally("NEW", _RECORD, 1)}
END;
CREATE TEMP TRIGGER IF NOT EXISTS tally_records_change AFTER UPDATE ON main.records BEGIN
    {_tally("OLD", _RECORD, -1)}
    {_tally("NEW", _RECORD, 1)}
END;
CREATE TEMP TRIGGER IF NOT EXISTS tally_records_drop AFTER DELETE ON main.records BEGIN
    {_tally("OLD", _RECORD, -1)}
END;
{_added_and_dropped("refs", "block_refs", "'b', {r}.block, {r}.ref")}
{_added_and_dropped("lost", "lost_blocks", "'l', {r}.block")}
{count_triggers("counter_delta", "tally_")}
"""

_FOLD = f"""
INSERT INTO main.part_digests SELECT part, digest, rows FROM temp.digest_delta WHERE true
    ON CONFLICT (part) DO UPDATE SET digest = {_XOR}, rows = rows + excluded.rows;
INSERT INTO main.bucket_counters SELECT bucket, objects, bytes, changed_ts FROM temp.counter_delta WHERE true
    ON CONFLICT (bucket) DO UPDATE SET objects = objects + excluded.objects, bytes = bytes + excluded.bytes,
        changed_ts = max(changed_ts, excluded.changed_ts);
DELETE FROM temp.digest_delta;
DELETE FROM temp.counter_delta;
DELETE FROM main.meta WHERE key = '{_MARKER}';
"""


class Tallies:
    """The deltas of one writer connection. Every method runs on the writer thread."""

    def __init__(self, conn: sqlite3.Connection, interval_s: float = FOLD_INTERVAL_S) -> None:
        """Rebuild what a crash left stale (outside any transaction), then start tallying."""
        self.interval_s = interval_s
        if conn.execute("SELECT 1 FROM meta WHERE key = ?", (_MARKER,)).fetchone() is not None:
            conn.executescript(f"BEGIN IMMEDIATE; {DIGESTS_FILL} {COUNTERS_FILL} "
                               f"DELETE FROM meta WHERE key = '{_MARKER}'; COMMIT;")
        conn.executescript(_TEMP)
        self._marked = False    # is the marker in the database (deltas may be pending)?
        self._folded_at = 0.0   # monotonic time of the last fold
        self._next: tuple[bool, float] | None = None

    def before_commit(self, conn: sqlite3.Connection, now: float, fold: bool = False) -> None:
        """In a transaction about to commit: fold if it is time (or `fold`), else mark the
        database if deltas are pending for the first time. `committed` must follow."""
        self._next = None
        if self._marked and (fold or now - self._folded_at >= self.interval_s):
            _run(conn, _FOLD)
            self._next = (False, now)
        elif not self._marked and _pending(conn):
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", (_MARKER,))
            self._next = (True, self._folded_at)

    def committed(self) -> None:
        """The transaction of the last `before_commit` is durable (not called if it failed:
        the rollback undid the fold or the marker with the rest)."""
        if self._next is not None:
            self._marked, self._folded_at = self._next
            self._next = None

    def close(self, conn: sqlite3.Connection) -> None:
        """Fold what is pending, so that the next open finds no marker."""
        if self._marked:
            conn.execute("BEGIN IMMEDIATE")
            self.before_commit(conn, 0.0, fold=True)
            conn.execute("COMMIT")
            self.committed()

    @staticmethod
    def digests(conn: sqlite3.Connection) -> dict[int, tuple[int, int]]:
        """partition -> (digest, rows) for every partition with rows: stored and pending."""
        return {int(part): (int(digest), int(rows)) for part, digest, rows in conn.execute(
            "SELECT part, es_xor(digest), sum(rows) FROM (SELECT part, digest, rows FROM main.part_digests "
            "UNION ALL SELECT part, digest, rows FROM temp.digest_delta) GROUP BY part HAVING sum(rows) > 0")}

    @staticmethod
    def counters(conn: sqlite3.Connection, bucket: str) -> tuple[int, int, int] | None:
        """(objects, bytes, changed_ts) of a bucket, stored and pending; None without rows."""
        row: Any = conn.execute(
            "SELECT count(*), sum(objects), sum(bytes), max(changed_ts) FROM ("
            "SELECT objects, bytes, changed_ts FROM main.bucket_counters WHERE bucket = ?1 "
            "UNION ALL SELECT objects, bytes, changed_ts FROM temp.counter_delta WHERE bucket = ?1)",
            (bucket,)).fetchone()
        return None if row[0] == 0 else (int(row[1]), int(row[2]), int(row[3]))


def _pending(conn: sqlite3.Connection) -> bool:
    row: tuple[int] = conn.execute("SELECT EXISTS (SELECT 1 FROM temp.digest_delta) "
                                   "OR EXISTS (SELECT 1 FROM temp.counter_delta)").fetchone()
    return row[0] == 1


def _run(conn: sqlite3.Connection, script: str) -> None:
    """Statements one by one inside the open transaction (executescript would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)
