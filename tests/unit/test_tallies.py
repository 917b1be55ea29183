"""Partition digests and bucket counters tallied in memory between folds (store/tallies.py):
right while pending, once folded, after a clean close, after SIGKILL, and after the
upgrade of a database whose triggers kept them."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from edgestore.store.meta import _SCHEMA, MetaStore, _connect
from edgestore.store.records import Record
from edgestore.store.tallies import DIGESTS_FILL, V5_TRIGGERS

# Writes of every kind that moves a digest or a counter, then SIGKILL before any fold: the
# figures it saw are printed first, for the reopened store to match.
_WRITER = """
import asyncio, json, os, signal, sys
from pathlib import Path
from edgestore.store.meta import MetaStore
from edgestore.store.records import Record

async def main() -> None:
    meta = MetaStore(Path(sys.argv[1]))
    meta._tallies.interval_s = float(sys.argv[2])
    for i in range(40):
        await meta.merge([(Record("object", f"a/b/k{i}", 10 + i, "n1", value={"size": i}, data=os.urandom(64)), i % 5)])
    await meta.merge([(Record("object", "a/b/k3", 100, "n1", deleted=True, value={}), 3)])
    await meta.merge([(Record("object", "a/c/k1", 101, "n2", value={"size": 7}), 1)])
    await meta.add_block_ref("e" * 64, "a/b/big#1", 2, 102)
    await meta.set_lost([("f" * 64, 4)], True)
    await meta.remove_rows([("object", "a/b/k5")])
    print(json.dumps({"digests": await meta.digests(), "b": await meta.bucket_counters("a/b"),
                      "c": await meta.bucket_counters("a/c")}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def write_and_kill(db: Path, fold_interval_s: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _WRITER, str(db), str(fold_interval_s)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    seen: dict[str, Any] = json.loads(proc.stdout)
    seen["digests"] = {int(p): tuple(v) for p, v in seen["digests"].items()}
    return seen


def stored(db: Path) -> tuple[dict[int, tuple[int, int]], list[tuple[Any, ...]], bool]:
    """The persistent tables as they are on disk, and whether the marker is there."""
    conn = sqlite3.connect(db)
    try:
        digests = {p: (d, r) for p, d, r in conn.execute("SELECT part, digest, rows FROM part_digests WHERE rows > 0")}
        counters = conn.execute("SELECT * FROM bucket_counters ORDER BY bucket").fetchall()
        marked = conn.execute("SELECT 1 FROM meta WHERE key = 'tallies_pending'").fetchone() is not None
        return digests, counters, marked
    finally:
        conn.close()


def recomputed(db: Path) -> dict[int, tuple[int, int]]:
    conn = _connect(db)
    try:
        conn.executescript(f"BEGIN; {DIGESTS_FILL}")   # rolled back: only read
        found = {p: (d, r) for p, d, r in conn.execute("SELECT part, digest, rows FROM part_digests WHERE rows > 0")}
        conn.execute("ROLLBACK")
        return found
    finally:
        conn.close()


def test_digests_and_counters_lost_with_a_killed_process_are_rebuilt_at_open(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    seen = write_and_kill(db, fold_interval_s=3600)   # nothing folded before the kill
    digests, _, marked = stored(db)
    assert marked and digests != seen["digests"]   # the file alone is stale, and says so

    async def go() -> None:
        meta = MetaStore(db)
        try:
            assert await meta.digests() == seen["digests"] == recomputed(db)
            assert list(await meta.bucket_counters("a/b") or ()) == seen["b"]
            assert list(await meta.bucket_counters("a/c") or ()) == seen["c"]
        finally:
            meta.close()
    run(go())
    digests, _, marked = stored(db)
    assert not marked and digests == seen["digests"]


def test_a_process_killed_after_folding_leaves_the_tables_right(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    seen = write_and_kill(db, fold_interval_s=0)   # every commit folds
    digests, counters, marked = stored(db)
    assert not marked and digests == seen["digests"] == recomputed(db)
    assert [list(c[1:]) for c in counters] == [seen["b"], seen["c"]]


def test_pending_tallies_are_read_with_the_stored_ones_and_folded_at_close(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"

    async def go() -> None:
        meta = MetaStore(db)
        meta._tallies.interval_s = 3600
        try:
            await meta.merge([(Record("object", f"a/b/k{i}", i + 1, "n1", value={"size": 2}), i % 3)
                              for i in range(9)])
            meta._tallies.interval_s = 0   # the next commit folds
            await meta.merge([(Record("object", "a/b/k0", 50, "n1", deleted=True, value={}), 0)])
            assert stored(db)[0] == await meta.digests()
            meta._tallies.interval_s = 3600
            await meta.merge([(Record("object", "a/b/x", 60, "n1", value={"size": 5}), 1)])
            assert stored(db)[2]   # pending again, and marked
            assert await meta.digests() == recomputed(db)
            assert await meta.bucket_counters("a/b") == (9, 21, 60)
        finally:
            meta.close()
        digests, counters, marked = stored(db)
        assert not marked and digests == recomputed(db) and counters == [("a/b", 9, 21, 60)]
    run(go())


def test_a_database_whose_triggers_kept_the_tallies_upgrades_without_counting_twice(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"

    async def go() -> None:
        meta = MetaStore(db)
        try:
            await meta.merge([(Record("object", "a/b/k", 1, "n1", value={"size": 3}), 1)])
        finally:
            meta.close()
        # Back to schema 5: persistent triggers (the old ones' names) that would add to the
        # tables again if the upgrade kept them.
        conn = sqlite3.connect(db)
        for name in V5_TRIGGERS:
            conn.execute(f"CREATE TRIGGER {name} AFTER INSERT ON records BEGIN "
                         "UPDATE bucket_counters SET objects = objects + 1000; END")
        conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
        meta = MetaStore(db)
        try:
            await meta.merge([(Record("object", "a/b/j", 2, "n1", value={"size": 4}), 1)])
            assert await meta.bucket_counters("a/b") == (2, 7, 2)
            assert await meta.digests() == recomputed(db)
        finally:
            meta.close()
        conn = sqlite3.connect(db)
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        conn.close()
        assert not names & set(V5_TRIGGERS)
    run(go())


def test_the_schema_of_a_new_database_has_no_tally_triggers(tmp_path: Path) -> None:
    """Other connections (tools, tests) write no deltas they could lose: only the writer's
    connection has the TEMP triggers."""
    meta = MetaStore(tmp_path / "meta.db")
    meta.close()
    conn = sqlite3.connect(tmp_path / "meta.db")
    conn.executescript(_SCHEMA)
    names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    conn.close()
    assert not any(n.startswith("tally_") or n in V5_TRIGGERS for n in names)
