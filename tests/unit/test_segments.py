"""Small bodies in segment files beside the metadata database, on a real directory with real
SQLite: where the bytes go, old inline rows, damaged segments, leftovers of a crash, and
compaction."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from edgestore.errors import StoreError
from edgestore.repair.compaction import SegmentCompaction
from edgestore.store.counters import COUNTERS_FILL, COUNTERS_SCHEMA
from edgestore.store.device import LocalDevice
from edgestore.store.meta import _DIGESTS, _SCHEMA, SCHEMA_VERSION, MetaStore, _connect, row_check
from edgestore.store.records import Record
from edgestore.store.segments import SegmentStore
from edgestore.store.tallies import DIGESTS_FILL


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def rec(name: str, ts: int, data: bytes | None, deleted: bool = False) -> Record:
    return Record("object", f"acct/bkt/{name}", ts, "n1", deleted, {"size": len(data or b"")}, data)


def segment_files(db: Path) -> list[Path]:
    return sorted((db.parent / "meta.db.segments").glob("*.seg"))


def checkpointed_bytes(db: Path) -> bytes:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db.read_bytes()


def test_bodies_are_in_segment_files_not_in_the_database_and_survive_reopen(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    body = b"reading " + os.urandom(4000)

    async def go() -> None:
        meta = MetaStore(db)
        await meta.merge([(rec("k", 1, body), 3), (rec("empty", 1, b""), 3)])
        meta.close()
        meta = MetaStore(db)
        try:
            assert (await meta.get("object", "acct/bkt/k")).data == body
            assert (await meta.get("object", "acct/bkt/empty")).data == b""
            assert (await meta.records_by_key([("object", "acct/bkt/k")]))[0].data == body
            assert await meta.damaged_rows(3) == ([], pytest.approx(len(body), abs=200))
        finally:
            meta.close()
    run(go())
    assert body[:64] not in checkpointed_bytes(db)
    assert [f.read_bytes() for f in segment_files(db)] == [body]


def make_schema_3_database(db: Path, body: bytes) -> None:
    """A database as edgestore wrote it before segments: the body inside the row."""
    conn = _connect(db)
    conn.executescript(_SCHEMA)
    conn.executescript(f"""BEGIN IMMEDIATE; {_DIGESTS} {COUNTERS_SCHEMA}
        INSERT INTO meta VALUES ('schema_version', '3'); COMMIT;""")
    value = json.dumps({"size": len(body)}, separators=(",", ":"))
    conn.execute("INSERT INTO records (kind, name, part, ts, node, deleted, value, data, check_xxh3) "
                 "VALUES ('object', 'acct/bkt/old', 3, 1, 'n1', 0, ?, ?, ?)", (value, body, row_check(value, body)))
    conn.executescript(f"BEGIN; {DIGESTS_FILL} {COUNTERS_FILL} COMMIT;")   # as its triggers kept them
    conn.close()


def test_an_old_format_database_with_bodies_in_rows_still_reads(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    old_body, new_body = os.urandom(3000), os.urandom(3000)
    make_schema_3_database(db, old_body)

    async def go() -> None:
        meta = MetaStore(db)
        try:
            assert (await meta.get("object", "acct/bkt/old")).data == old_body
            assert (await meta.check("object", "acct/bkt/old"))[1]
            assert (await meta.damaged_rows(3))[0] == []
            before = await meta.digests()
            await meta.merge([(rec("old", 2, new_body), 3)])   # an overwrite goes to a segment
            assert (await meta.get("object", "acct/bkt/old")).data == new_body
            assert await meta.digests() != before
        finally:
            meta.close()
    run(go())
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert conn.execute("SELECT data IS NULL, seg_len FROM records").fetchone() == (1, 3000)
    conn.close()


def test_a_corrupt_body_in_a_segment_is_detected_on_read_and_by_scrub(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    good, bad = os.urandom(4096), os.urandom(4096)

    async def go() -> None:
        meta = MetaStore(db)
        await meta.merge([(rec("good", 1, good), 3), (rec("bad", 1, bad), 3)])
        meta.close()
        seg = segment_files(db)[0]
        raw = bytearray(seg.read_bytes())
        raw[raw.find(bad) + 100] ^= 0x01
        seg.write_bytes(raw)
        meta = MetaStore(db)
        try:
            with pytest.raises(StoreError):
                await meta.get("object", "acct/bkt/bad")
            assert (await meta.check("object", "acct/bkt/bad"))[1] is False
            assert [r.name for r in await meta.records_by_key([("object", "acct/bkt/bad")])] == []
            assert (await meta.damaged_rows(3))[0] == [("object", "acct/bkt/bad")]
            assert (await meta.get("object", "acct/bkt/good")).data == good
            await meta.remove_rows([("object", "acct/bkt/bad")])   # what scrub does with it
            assert await meta.get("object", "acct/bkt/bad") is None
            assert [live for _, live, _ in await meta.segment_usage()] == [4096]
        finally:
            meta.close()
    run(go())


def test_leftovers_of_a_crash_before_the_commit_are_ignored_and_cleaned(tmp_path: Path) -> None:
    """Appended and synced, then killed before the commit: bytes at a segment's tail that no
    row names, and a segment file the database never heard of."""
    db = tmp_path / "meta.db"
    body = os.urandom(4096)

    async def go() -> None:
        meta = MetaStore(db)
        await meta.merge([(rec("k", 1, body), 3)])
        meta.close()
        known = segment_files(db)[0]
        with open(known, "ab") as f:
            f.write(os.urandom(1000))
        orphan = known.with_name(f"{int(known.stem) + 1:010d}.seg")
        orphan.write_bytes(os.urandom(2000))
        meta = MetaStore(db)
        try:
            assert not orphan.exists()
            assert (await meta.get("object", "acct/bkt/k")).data == body
            await meta.merge([(rec("k2", 1, body), 3)])
            assert (await meta.get("object", "acct/bkt/k2")).data == body
            assert len(segment_files(db)) == 2   # a new segment after every open
        finally:
            meta.close()
    run(go())


def test_compaction_reclaims_dead_segments_and_keeps_every_live_body_readable(tmp_path: Path) -> None:
    bodies = {f"k{i:03d}": os.urandom(4096) for i in range(120)}

    async def go() -> None:
        device = LocalDevice("d1", tmp_path / "d1")
        meta = device.meta
        meta.segments.max_bytes = 64 * 1024    # 16 bodies a segment
        db = meta.path
        try:
            for name, body in bodies.items():
                await meta.merge([(rec(name, 1, body), 3)])
            for i, name in enumerate(sorted(bodies)):
                if i % 4 == 0:
                    continue       # a quarter stays as written
                if i % 2:
                    await meta.merge([(rec(name, 2, None, deleted=True), 3)])
                    bodies[name] = b""
                else:
                    bodies[name] = os.urandom(4096)
                    await meta.merge([(rec(name, 2, bodies[name]), 3)])
            digests = await meta.digests()
            before = sum(f.stat().st_size for f in segment_files(db))
            result = await SegmentCompaction([device]).run_once()
            after = sum(f.stat().st_size for f in segment_files(db))
            assert result["segments_compacted"] >= 5 and result["errors"] == 0, result
            live = sum(len(b) for b in bodies.values())
            assert after < before and after <= 2 * live + meta.segments.max_bytes, (before, after, live)
            assert await meta.digests() == digests   # anti-entropy sees the same rows
            assert (await meta.damaged_rows(3))[0] == []
            for name, body in bodies.items():
                got = await meta.get("object", f"acct/bkt/{name}")
                assert got is not None and (got.deleted if not body else got.data == body), name
            sealed = sum(n for _, n, _ in await meta.segment_usage())   # summed from the rows
            conn = sqlite3.connect(db)
            in_active = conn.execute("SELECT coalesce(sum(seg_len), 0) FROM records WHERE seg = ?",
                                     (meta.segments.active,)).fetchone()[0]
            conn.close()
            assert sealed + in_active == live   # counted exactly
        finally:
            device.close()
        device = LocalDevice("d1", tmp_path / "d1")   # and after a reopen
        try:
            for name, body in bodies.items():
                if body:
                    assert (await device.meta.get("object", f"acct/bkt/{name}")).data == body
        finally:
            device.close()
    run(go())


def test_a_batch_that_fills_segments_names_every_body_in_the_segment_it_landed_in(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    bodies = {f"k{i}": os.urandom(4096) for i in range(5)}

    async def go() -> None:
        meta = MetaStore(db)
        meta.segments.max_bytes = 10 * 1024     # two bodies a segment: one batch spans three
        await meta.merge([(rec(name, 1, body), 3) for name, body in bodies.items()])
        meta.close()
        meta = MetaStore(db)
        try:
            for name, body in bodies.items():
                assert (await meta.get("object", f"acct/bkt/{name}")).data == body
            assert sorted(live for _, live, _ in await meta.segment_usage()) == [4096, 8192, 8192]
        finally:
            meta.close()
    run(go())
    assert len(segment_files(db)) == 3


def test_a_segment_that_cannot_be_created_leaves_the_store_able_to_append_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed open of a new segment (a full disk, no fds left) fails that write only: the
    old handle is not closed twice, and no write after it goes to a handle that is gone."""
    db = tmp_path / "meta.db"
    bodies = {f"k{i}": os.urandom(4096) for i in range(4)}
    real_open = os.open

    def no_new_files(path, flags, *args):  # type: ignore[no-untyped-def]
        if flags & os.O_CREAT and str(path).endswith(".seg"):
            raise OSError(28, "No space left on device")
        return real_open(path, flags, *args)

    async def go() -> None:
        meta = MetaStore(db)
        meta.segments.max_bytes = 6 * 1024   # one body a segment: every write rolls
        try:
            with monkeypatch.context() as m:
                m.setattr(os, "open", no_new_files)
                with pytest.raises(StoreError):
                    await meta.merge([(rec("k0", 1, bodies["k0"]), 3)])   # the first roll
            await meta.merge([(rec("k1", 1, bodies["k1"]), 3)])
            with monkeypatch.context() as m:
                m.setattr(os, "open", no_new_files)
                with pytest.raises(StoreError):
                    await meta.merge([(rec("k2", 1, bodies["k2"]), 3)])   # a roll of a segment
            await meta.merge([(rec("k3", 1, bodies["k3"]), 3)])
            await meta.merge([(rec("k2", 1, bodies["k2"]), 3)])
        finally:
            meta.close()
        meta = MetaStore(db)
        try:
            assert await meta.get("object", "acct/bkt/k0") is None
            for name in ("k1", "k2", "k3"):
                assert (await meta.get("object", f"acct/bkt/{name}")).data == bodies[name]
        finally:
            meta.close()
    run(go())


def test_a_failed_segment_sync_fails_every_write_of_the_batch_and_abandons_the_segment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write 1 appends to a segment, write 2 of the same batch fills it, and the fdatasync
    that seals it fails: write 1's bytes may be lost, so neither write may commit (Linux
    would report success to the fdatasync at the batch's end), nor a later one rely on
    that segment."""
    db = tmp_path / "meta.db"
    real_fdatasync = os.fdatasync
    calls = 0
    first_sync = threading.Event()
    release = threading.Event()

    def fdatasync(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:      # the first batch's: hold the writer while two writes queue
            first_sync.set()
            release.wait()
        elif calls == 2:    # the roll inside the second batch
            raise OSError(5, "Input/output error")
        real_fdatasync(fd)

    async def go() -> None:
        meta = MetaStore(db)
        meta.segments.max_bytes = 10 * 1024   # two bodies a segment
        try:
            monkeypatch.setattr(os, "fdatasync", fdatasync)
            first = asyncio.ensure_future(meta.merge([(rec("a", 1, os.urandom(4096)), 3)]))
            await asyncio.to_thread(first_sync.wait)
            failing = meta.segments.active
            second = asyncio.ensure_future(meta.merge([(rec("b", 1, os.urandom(4096)), 3)]))
            third = asyncio.ensure_future(meta.merge([(rec("c", 1, os.urandom(4096)), 3)]))
            for _ in range(5):
                await asyncio.sleep(0)   # both queued behind the held commit
            release.set()
            await first
            results = await asyncio.gather(second, third, return_exceptions=True)
            assert [type(r) for r in results] == [StoreError, StoreError], results
            assert await meta.get("object", "acct/bkt/b") is None
            assert await meta.get("object", "acct/bkt/c") is None
            body = os.urandom(4096)
            await meta.merge([(rec("d", 1, body), 3)])
            assert meta.segments.active != failing   # abandoned: nothing more goes there
            assert (await meta.get("object", "acct/bkt/d")).data == body
        finally:
            meta.close()
    run(go())


def test_a_new_segments_directory_is_made_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    SegmentStore(tmp_path / "dev" / "meta.db.segments").close()
    assert (tmp_path / "dev").stat().st_ino in synced


async def no_pace(_: int) -> None:
    return None


def test_scrub_racing_compaction_reports_no_good_row_damaged(tmp_path: Path) -> None:
    """Scrub's scan began before compaction repointed its rows and unlinked their segment:
    the rows it then finds without a file are checked again in a fresh snapshot, which
    names their new place, not reported damaged (and deleted)."""
    db = tmp_path / "meta.db"
    bodies = {f"k{i}": os.urandom(4096) for i in range(3)}

    async def go() -> None:
        meta = MetaStore(db)
        await meta.merge([(rec(name, 1, body), 3) for name, body in bodies.items()])
        meta.close()
        meta = MetaStore(db)   # that segment is sealed now
        try:
            (seg, _, _), = await meta.segment_usage()
            loop = asyncio.get_running_loop()
            paced, go_on, compacted = asyncio.Event(), asyncio.Event(), threading.Event()

            async def pace(_: int) -> None:   # compaction has listed the rows; hold its copy
                paced.set()
                await go_on.wait()
            compaction = asyncio.ensure_future(meta.compact_segment(seg, pace))
            await paced.wait()

            held = False

            def hold_scan() -> int:   # in the scrub's scan, its snapshot taken
                nonlocal held
                if not held:
                    held = True
                    loop.call_soon_threadsafe(go_on.set)
                    compacted.wait()
                return 0
            meta._rconn.set_progress_handler(hold_scan, 1)
            scrub = asyncio.ensure_future(meta.damaged_rows(3))
            await go_on.wait()
            assert await compaction == 3 * 4096
            assert not meta.segments.file(seg).exists()
            compacted.set()
            damaged, _ = await scrub
            meta._rconn.set_progress_handler(None, 1)
            assert held and damaged == []
            for name, body in bodies.items():
                assert (await meta.get("object", f"acct/bkt/{name}")).data == body
        finally:
            meta.close()
    run(go())


def test_compaction_never_drops_or_unlinks_the_active_segment(tmp_path: Path) -> None:
    """The usage list was read before the writer rolled to a new segment: compaction told
    to compact the segment being appended to (all dead so far) leaves it be, or every body
    appended next would go to an unlinked file."""
    db = tmp_path / "meta.db"
    body = os.urandom(4096)

    async def go() -> None:
        meta = MetaStore(db)
        try:
            await meta.merge([(rec("gone", 1, os.urandom(4096)), 3)])
            await meta.merge([(rec("gone", 2, None, deleted=True), 3)])   # live 0
            active = meta.segments.active
            assert active is not None
            assert await meta.compact_segment(active, no_pace) == 0
            assert meta.segments.file(active).exists()
            with pytest.raises(ValueError):
                meta.segments.unlink(active)
            await meta.merge([(rec("k", 1, body), 3)])
        finally:
            meta.close()
        meta = MetaStore(db)
        try:
            assert (await meta.get("object", "acct/bkt/k")).data == body
        finally:
            meta.close()
    run(go())


def test_a_segment_whose_file_is_lost_does_not_stop_compaction_of_the_later_ones(tmp_path: Path) -> None:
    async def go() -> None:
        device = LocalDevice("d1", tmp_path / "d1")
        meta = device.meta
        meta.segments.max_bytes = 10 * 1024    # two bodies a segment
        for name in ("a0", "a1", "b0", "b1", "c0"):
            await meta.merge([(rec(name, 1, os.urandom(4096)), 3)])
        for name in ("b0", "b1"):
            await meta.merge([(rec(name, 2, None, deleted=True), 3)])
        first, second = sorted(seg for seg, *_ in await meta.segment_usage())[:2]
        device.close()
        meta.segments.file(first).unlink()     # live bodies, file lost
        device = LocalDevice("d1", tmp_path / "d1")
        try:
            result = await SegmentCompaction([device]).run_once()
            assert not device.meta.segments.file(second).exists(), result
            assert result["segments_compacted"] == 1 and result["errors"] == 0, result
        finally:
            device.close()
    run(go())


@pytest.mark.parametrize("bad", ["x", None, True, [0.5], 0, -0.5, 1.5, "nan", float("inf")])
def test_compaction_refuses_a_dead_share_that_is_not_a_number_in_0_to_1(tmp_path: Path, bad: object) -> None:
    async def go() -> None:
        device = LocalDevice("d1", tmp_path / "d1")
        try:
            compaction = SegmentCompaction([device])
            with pytest.raises(ValueError):
                await compaction.run_once(dead_share=bad)
            assert compaction.progress.passes == 0   # refused before the pass, not within it
            assert (await compaction.run_once(dead_share="0.25"))["errors"] == 0
            assert (await compaction.run_once(dead_share=1))["errors"] == 0
        finally:
            device.close()
    run(go())
