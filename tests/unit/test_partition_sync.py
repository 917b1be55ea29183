"""Partition digests and the push that makes two replicas of a partition equal, on real
devices (directories with SQLite and block files) of one process."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgestore.repair.limiter import ByteRateLimiter
from edgestore.repair.partsync import push_partition
from edgestore.repair.replicas import LocalReplica
from edgestore.store.blockid import legacy_block_id, new_block_id, whole_block_id
from edgestore.store.device import LocalDevice
from edgestore.store.meta import BlockRef, MetaStore
from edgestore.store.records import Record

PART = 7
UNLIMITED = ByteRateLimiter(0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def rec(name: str, ts: int, node: str = "n1", deleted: bool = False, data: bytes | None = None) -> Record:
    return Record("object", f"a/b/{name}", ts, node, deleted, {"size": len(data or b"")}, data)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(1, 9)), min_size=1, max_size=12), st.randoms())
def test_digest_depends_on_the_rows_not_on_the_order_they_arrived(tmp_path_factory: Any, writes: Any,
                                                                    rnd: Any) -> None:
    shuffled = list(writes)
    rnd.shuffle(shuffled)

    async def digest_after(order: list[tuple[str, int]], path: Path) -> Any:
        meta = MetaStore(path)
        try:
            for name, ts in order:
                # One version (ts, writer) is one write: its content never differs.
                await meta.merge([(rec(name, ts, deleted=ts % 3 == 0), PART)])
            return await meta.digests()
        finally:
            meta.close()

    base = tmp_path_factory.mktemp("digest")
    assert run(digest_after(writes, base / "one.db")) == run(digest_after(shuffled, base / "two.db"))


def test_digest_changes_with_a_newer_version_a_tombstone_a_ref_and_a_lost_block(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            seen = set()

            async def snapshot() -> int:
                digest = (await meta.digests())[PART][0]
                assert digest not in seen
                seen.add(digest)
                return digest
            await meta.merge([(rec("k", 1), PART)])
            await snapshot()
            await meta.merge([(rec("k", 2), PART)])
            await snapshot()
            await meta.merge([(rec("k", 3, deleted=True), PART)])
            before_older = await snapshot()
            await meta.merge([(rec("k", 2), PART)])          # older: ignored, digest unchanged
            assert (await meta.digests())[PART][0] == before_older
            await meta.add_block_refs([BlockRef("f" * 64, "a/b/k#1", PART, 5)])
            await snapshot()
            await meta.set_lost([("f" * 64, PART)], lost=True)
            await snapshot()
            await meta.set_lost([("f" * 64, PART)], lost=False)
            assert (await meta.digests())[PART][1] == 2       # the record and the ref
        finally:
            meta.close()
    run(go())


def test_digests_are_computed_for_a_database_written_before_they_existed(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        await meta.merge([(rec("x", 4), 1), (rec("y", 5, deleted=True), 2)])
        await meta.add_block_ref("e" * 64, "a/b/x#1", 3, 4)
        expected = await meta.digests()
        meta.close()
        # Turn it into a version-1 database: no digests, no triggers, a checksum of inline
        # data only.
        conn = sqlite3.connect(tmp_path / "meta.db")
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("ALTER TABLE records RENAME COLUMN check_xxh3 TO data_xxh3")
        conn.execute("UPDATE records SET data_xxh3 = 0")
        conn.execute("DROP TABLE part_digests")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
        reopened = MetaStore(tmp_path / "meta.db")
        try:
            assert await reopened.digests() == expected
            assert (await reopened.check("object", "a/b/x"))[1]    # rows got their checksums
            await reopened.merge([(rec("z", 6), 1)])   # and the triggers work again
            assert (await reopened.digests())[1][1] == 2
        finally:
            reopened.close()
    run(go())


async def _write_object(device: LocalDevice, name: str, ts: int, body: bytes,
                        make_id: Callable[[bytes], str] = new_block_id) -> str:
    block = make_id(body)
    await device.blocks.put(block, body)
    await device.meta.add_block_ref(block, f"a/b/{name}#{ts}", PART, ts)
    await device.meta.merge([(Record("object", f"a/b/{name}", ts, "n1", False,
                                     {"size": len(body), "blocks": [[block, len(body)]]}), PART)])
    return block


def test_push_sends_records_blocks_and_refs_until_digests_match(tmp_path: Path) -> None:
    async def go() -> None:
        a, b = LocalDevice("a", tmp_path / "a"), LocalDevice("b", tmp_path / "b")
        try:
            body = os.urandom(200_000)
            block = await _write_object(a, "big", 10, body)
            await a.meta.merge([(rec("small", 11, data=b"inline bytes"), PART), (rec("gone", 12, deleted=True), PART)])
            await b.meta.merge([(rec("small", 3, data=b"stale"), PART)])
            result = await push_partition(a, PART, LocalReplica(b), UNLIMITED)
            assert (result.records, result.blocks, result.refs) == (3, 1, 1)
            assert (await a.meta.digests())[PART] == (await b.meta.digests())[PART]
            assert await b.blocks.get(block) == body
            small = await b.meta.get("object", "a/b/small")
            assert small is not None and small.data == b"inline bytes"
            again = await push_partition(a, PART, LocalReplica(b), UNLIMITED)
            assert (again.records, again.blocks, again.refs) == (0, 0, 0)
        finally:
            a.close()
            b.close()
    run(go())


@pytest.mark.parametrize("make_id", [new_block_id, whole_block_id, legacy_block_id], ids=["new", "whole", "legacy"])
def test_a_ref_without_its_block_is_marked_lost_until_the_block_arrives(tmp_path: Path,
                                                                        make_id: Callable[[bytes], str]) -> None:
    async def go() -> None:
        a, b, c = (LocalDevice(n, tmp_path / n) for n in "abc")
        try:
            body = os.urandom(50_000)
            block = await _write_object(a, "obj", 10, body, make_id)
            # b has the record and the ref but lost the file (a rotten card, say)
            await push_partition(a, PART, LocalReplica(b), UNLIMITED)
            await b.blocks.delete(block)
            await b.meta.set_lost([(block, PART)], lost=True)
            assert (await a.meta.digests())[PART] != (await b.meta.digests())[PART]
            # b cannot help c with the block, but passes on the ref: c marks it lost too
            await push_partition(b, PART, LocalReplica(c), UNLIMITED)
            assert await c.meta.lost_count() == 1
            # a, which has the file, repairs both
            for target in (b, c):
                result = await push_partition(a, PART, LocalReplica(target), UNLIMITED)
                assert result.blocks == 1
                assert await target.meta.lost_count() == 0
                assert await target.blocks.get(block) == body
                assert (await a.meta.digests())[PART] == (await target.meta.digests())[PART]
        finally:
            for dev in (a, b, c):
                dev.close()
    run(go())


def test_dropping_a_handed_back_partition_keeps_newer_writes(tmp_path: Path) -> None:
    async def go() -> None:
        handoff = LocalDevice("h", tmp_path / "h")
        try:
            await handoff.meta.merge([(rec("k", 5, data=b"v1"), PART)])
            index = await handoff.meta.partition_index(PART)
            await handoff.meta.merge([(rec("k", 6, data=b"v2"), PART)])   # arrived after the push
            records = [(kind, name, ts, node) for kind, name, ts, node, _ in index.records]
            await handoff.meta.drop_partition_rows(PART, records, [])
            kept = await handoff.meta.get("object", "a/b/k")
            assert kept is not None and kept.ts == 6
            await handoff.meta.drop_partition_rows(PART, [("object", "a/b/k", 6, "n1")], [])
            assert await handoff.meta.digests() == {}
        finally:
            handoff.close()
    run(go())


def test_a_wiped_device_is_noticed_and_reopened_empty(tmp_path: Path) -> None:
    async def go() -> None:
        device = LocalDevice("d", tmp_path / "d")
        try:
            await device.meta.merge([(rec("k", 5), PART)])
            assert not device.replaced()
            for path in sorted((tmp_path / "d").rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
            assert device.replaced()
            device.reopen()
            assert not device.replaced()
            assert await device.meta.digests() == {}
        finally:
            device.close()
    run(go())


def test_rate_limiter_spaces_out_bytes() -> None:
    async def go() -> float:
        limiter = ByteRateLimiter(1_000_000, burst_bytes=100_000)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(5):
            await limiter.take(100_000)
        return loop.time() - start
    # 500 kB at 1 MB/s with a 100 kB burst: at least 0.4 s
    assert run(go()) >= 0.35
