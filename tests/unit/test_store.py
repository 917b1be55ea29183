"""The store of one device, on a real directory with real SQLite: merges, listing, blocks."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgestore.errors import CorruptBlock, NoSuchBlock
from edgestore.store.blockid import (
    BLOCK_ID,
    DIGEST_BYTES,
    PIECE_BYTES,
    BlockVerifier,
    legacy_block_id,
    new_block_id,
    piece_digests,
    verify,
    whole_block_id,
)
from edgestore.store.blocks import BlockStore, file_intact
from edgestore.store.meta import MetaStore, prefix_end
from edgestore.store.records import Record, newest


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def rec(name: str, ts: int, node: str = "n1", deleted: bool = False, data: bytes | None = None) -> Record:
    return Record("object", name, ts, node, deleted, {"size": ts}, data)


def test_merge_keeps_the_newest_version_whatever_the_order(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            assert await meta.merge([(rec("a/b/k", 5), 1)]) == {}
            assert await meta.merge([(rec("a/b/k", 3), 1)]) == {"a/b/k": 5}  # older: ignored, and told
            assert (await meta.get("object", "a/b/k")).ts == 5
            await meta.merge([(rec("a/b/k", 5, node="n2"), 1)])  # same ts, larger node wins
            assert (await meta.get("object", "a/b/k")).node == "n2"
            await meta.merge([(rec("a/b/k", 9, deleted=True), 1)])
            got = await meta.get("object", "a/b/k")
            assert got.deleted and got.ts == 9
        finally:
            meta.close()
    run(go())


def test_merge_tells_the_version_each_record_met(tmp_path: Path) -> None:
    """What a Swift DELETE answers 404 by: the version a write replaced (or lost to), and
    whether it was live — a tombstone and an expired object are not."""
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            prior: dict[str, tuple[int, str, bool]] = {}
            await meta.merge([(rec("a/b/new", 2), 1)], prior)
            assert prior == {}  # nothing was there
            await meta.merge([(rec("a/b/new", 4, deleted=True), 1)], prior)
            assert prior == {"a/b/new": (2, "n1", True)}
            await meta.merge([(rec("a/b/new", 6, deleted=True), 1)], prior)
            assert prior == {"a/b/new": (4, "n1", False)}
            await meta.merge([(rec("a/b/new", 5), 1)], prior)  # lost to the newer tombstone
            assert prior == {"a/b/new": (6, "n1", False)}
            expired = Record("object", "a/b/gone", 1, "n1", value={"size": 1, "delete_at": 1000})
            await meta.merge([(expired, 1)])
            prior.clear()
            await meta.merge([(rec("a/b/gone", 2, deleted=True), 1)], prior)
            assert prior == {"a/b/gone": (1, "n1", False)}
        finally:
            meta.close()
    run(go())


def test_overwrites_of_objects_whose_blocks_are_gc_candidates_already(tmp_path: Path) -> None:
    """A block listed twice in one object, or already a candidate (a copy's), must not fail
    the merge that frees it again."""
    def blocks(name: str, ts: int, *ids: str) -> Record:
        return Record("object", name, ts, "n1", False, {"size": 1, "blocks": [[b, 1] for b in ids]}, None)

    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            await meta.merge([(blocks("a/b/one", 1, "x", "x", "y"), 1), (blocks("a/b/two", 1, "y"), 1)])
            await meta.merge([(blocks("a/b/one", 2, "z"), 1)])  # frees x (twice) and y
            await meta.merge([(blocks("a/b/two", 2, "z"), 1)])  # frees y again
            await meta.merge([(rec("a/b/one", 3, deleted=True), 1)])
            assert sorted(block for block, _ in await meta.gc_candidates(10)) == ["x", "y", "z"]
        finally:
            meta.close()
    run(go())


def test_a_candidate_freed_again_while_collection_decides_stays_a_candidate(tmp_path: Path) -> None:
    """Collection drops a candidate it found in use; a change that freed the block
    meanwhile must not be dropped with it, or the block would never be looked at again."""
    def blocks(name: str, ts: int, *ids: str) -> Record:
        return Record("object", name, ts, "n1", False, {"size": 1, "blocks": [[b, 1] for b in ids]}, None)

    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            await meta.merge([(blocks("a/b/one", 1, "x"), 1), (blocks("a/b/copy", 1, "x"), 1)])
            await meta.merge([(blocks("a/b/one", 2, "y"), 1)])          # frees x at 2
            assert await meta.gc_candidates(10) == [("x", 2)]           # collection reads it...
            await meta.merge([(rec("a/b/copy", 7, deleted=True), 1)])  # ...the last user goes...
            await meta.drop_gc_candidates([("x", 2)])                   # ...and it decided "in use"
            assert await meta.gc_candidates(10) == [("x", 7)]
            await meta.drop_gc_candidates([("x", 7)])
            assert await meta.gc_candidates(10) == []
        finally:
            meta.close()
    run(go())


def test_inline_data_round_trips_and_survives_reopen(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        await meta.merge([(rec("a/b/k", 1, data=b"\x00hello"), 7)])
        meta.close()
        meta = MetaStore(tmp_path / "meta.db")
        try:
            got = await meta.get("object", "a/b/k")
            assert got.data == b"\x00hello"
            assert (await meta.get("object", "a/b/k", with_data=False)).data is None
        finally:
            meta.close()
    run(go())


def test_concurrent_writes_are_all_committed(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            await asyncio.gather(*(meta.merge([(rec(f"a/b/{i:04d}", i + 1), 0)]) for i in range(300)))
            listed = await meta.list("object", "a/b/", limit=1000)
            assert [r.name for r in listed] == [f"a/b/{i:04d}" for i in range(300)]
        finally:
            meta.close()
    run(go())


def test_list_pages_by_prefix_in_byte_order(tmp_path: Path) -> None:
    names = ["a/b/x", "a/b/ä", "a/b/z", "a/b/\U0001f600", "a/bb/y", "a/b/+", "a/b/%20"]

    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            await meta.merge([(rec(n, 1), 0) for n in names])
            listed = [r.name for r in await meta.list("object", "a/b/")]
            expected = sorted((n for n in names if n.startswith("a/b/")), key=lambda s: s.encode())
            assert listed == expected
            page = await meta.list("object", "a/b/", after=expected[1], limit=2)
            assert [r.name for r in page] == expected[2:4]
        finally:
            meta.close()
    run(go())


@given(st.text(min_size=1, max_size=6), st.text(max_size=6))
@settings(max_examples=200, deadline=None)
def test_prefix_end_bounds_exactly_the_strings_with_that_prefix(prefix: str, rest: str) -> None:
    end = prefix_end(prefix)
    if end is not None:
        assert (prefix + rest).encode("utf-8", "surrogatepass") < end.encode("utf-8", "surrogatepass")
        assert not end.startswith(prefix)


@given(st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["n1", "n2", "n3"])), min_size=1, max_size=8))
def test_newest_is_order_independent(versions: list[tuple[int, str]]) -> None:
    records = [rec("k", ts, node) for ts, node in versions]
    assert newest(records).version == newest(list(reversed(records))).version == max(versions)


# Blocks this version writes, and the two forms older versions wrote.
BLOCK_IDS = pytest.mark.parametrize("make_id", [new_block_id, whole_block_id, legacy_block_id],
                                    ids=["new", "whole", "legacy"])


@BLOCK_IDS
def test_block_put_get_and_quarantine_on_corruption(tmp_path: Path, make_id: Callable[[bytes], str]) -> None:
    async def go() -> None:
        store = BlockStore(tmp_path / "blocks", "d1")
        data = b"x" * 5000
        block = make_id(data)
        await store.put(block, data)
        assert await store.get(block) == data
        assert await store.check(block) == (True, True)
        assert not list((tmp_path / "blocks" / "tmp").iterdir())
        path = store.path_of(block)
        path.write_bytes(b"y" + data[1:])  # a rotten sector
        with pytest.raises(CorruptBlock):
            await store.get(block)
        assert (tmp_path / "blocks" / "quarantine" / block).exists()
        with pytest.raises(NoSuchBlock):
            await store.get(block)
        assert await store.check(block) == (False, False)
    run(go())


def test_new_blocks_fan_out_one_level_and_legacy_blocks_stay_where_they_were(tmp_path: Path) -> None:
    """New ids: 256 directories (one new directory, one extra fsync, only for the first few
    thousand blocks); legacy ids keep the two-level layout their files were written in."""
    async def go() -> None:
        root = tmp_path / "blocks"
        store = BlockStore(root, "d1")
        for make_id, depth in ((new_block_id, 1), (whole_block_id, 1), (legacy_block_id, 2)):
            data = os.urandom(3000)
            block = make_id(data)
            await store.put(block, data)
            relative = store.path_of(block).relative_to(root)
            assert len(relative.parts) == depth + 1 and relative.parts[0] == block[:2]
            raw = store.path_of(block).read_bytes()
            assert raw.startswith(data) and file_intact(block, raw) and await store.get(block) == data
    run(go())


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


@BLOCK_IDS
def test_received_bytes_are_kept_only_when_they_match_the_id(tmp_path: Path, make_id: Callable[[bytes], str]) -> None:
    async def go() -> None:
        store = BlockStore(tmp_path / "blocks", "d1")
        data = os.urandom(2_500_000)   # several receive batches
        block = make_id(data)
        upload = await store.receive(block, _pieces(data[:-1] + bytes([data[-1] ^ 1]), 65536), 4 << 20)
        with pytest.raises(CorruptBlock):
            await upload.finish()
        upload.discard()
        assert not list(store.tmp.iterdir()) and not await store.has(block)
        await (await store.receive(block, _pieces(data, 65536), 4 << 20)).finish()
        assert await store.get(block) == data and not list(store.tmp.iterdir())
    run(go())


def test_new_block_ids_are_unique_and_carry_the_checksum() -> None:
    data = b"same bytes"
    first, second = new_block_id(data), new_block_id(data)
    assert first != second   # no content dedup: each write is its own block
    for block in (first, second, whole_block_id(data), legacy_block_id(data)):
        assert BLOCK_ID.match(block)
        assert verify(block, data) and not verify(block, data + b"!")
        streamed = BlockVerifier(block)
        streamed.update(data[:4])
        streamed.update(data[4:])
        assert streamed.matches()
    forged = first[:33] + new_block_id(b"other")[33:]
    assert not verify(forged, data)
    for bad in ("", first.upper(), first.replace("-", "x"), first + "0", first[:-2] + "99", first[:-1],
                legacy_block_id(data)[:-1], "../" + first[3:]):
        assert not BLOCK_ID.match(bad), bad


def test_a_pieced_block_is_checked_piece_by_piece_whatever_the_chunks_it_arrives_in() -> None:
    data = os.urandom(3 * PIECE_BYTES + 1234)
    block = new_block_id(data)
    for chunk in (997, 4096, PIECE_BYTES - 1, PIECE_BYTES, PIECE_BYTES + 7, len(data)):
        streamed = BlockVerifier(block)
        for at in range(0, len(data), chunk):
            streamed.update(data[at:at + chunk])
        assert streamed.matches(), chunk
        assert streamed.digests() == piece_digests(data, PIECE_BYTES)
    damaged = BlockVerifier(block)
    damaged.update(data[:-1])
    assert not damaged.matches()   # one byte short


def test_a_ranged_read_checks_only_the_pieces_it_reads(tmp_path: Path) -> None:
    """A read of a few bytes reads their piece (and the digests), not the whole block; a
    rotten piece fails every read that touches it, and only those (scrub finds the rest)."""
    async def go() -> None:
        store = BlockStore(tmp_path / "blocks", "d1")
        data = os.urandom(5 * PIECE_BYTES + 999)
        block = new_block_id(data)
        await store.put(block, data)
        for first, last in ((0, len(data) - 1), (1, 1), (PIECE_BYTES - 2, PIECE_BYTES + 3),
                            (2 * PIECE_BYTES, 3 * PIECE_BYTES - 1), (len(data) - 5, len(data) - 1)):
            assert await store.read_range(block, first, last) == data[first:last + 1]
        read = await store.read_pieces(block, PIECE_BYTES + 10, PIECE_BYTES + 20)
        assert (read.size, read.start, read.data) == (len(data), PIECE_BYTES, data[PIECE_BYTES:2 * PIECE_BYTES])
        assert read.digests == piece_digests(data, PIECE_BYTES)
        path = store.path_of(block)
        with open(path, "r+b") as f:   # rot in the fourth piece
            f.seek(3 * PIECE_BYTES + 5)
            f.write(bytes([data[3 * PIECE_BYTES + 5] ^ 0xFF]))
        assert await store.read_range(block, 0, 2 * PIECE_BYTES) == data[:2 * PIECE_BYTES + 1]
        with pytest.raises(CorruptBlock):
            await store.read_range(block, 3 * PIECE_BYTES - 1, 3 * PIECE_BYTES)
        assert not path.exists() and (store.quarantine / block).exists()
    run(go())


def test_a_pieced_block_whose_digests_rot_is_refused(tmp_path: Path) -> None:
    async def go() -> None:
        store = BlockStore(tmp_path / "blocks", "d1")
        data = os.urandom(2 * PIECE_BYTES)
        block = new_block_id(data)
        await store.put(block, data)
        path = store.path_of(block)
        raw = path.read_bytes()
        assert len(raw) == len(data) + 2 * DIGEST_BYTES and file_intact(block, raw)
        path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))   # the last digest, not the data
        with pytest.raises(CorruptBlock):
            await store.read_range(block, 0, 10)
    run(go())


def _cached_pages(path: Path) -> int:
    """Pages of a file in the page cache, from util-linux's fincore (mincore(2))."""
    done = subprocess.run(["fincore", "--noheadings", "--raw", "--output", "PAGES", str(path)],
                          capture_output=True, text=True, timeout=30, check=True)
    return int(done.stdout.split()[0])


@pytest.mark.skipif(shutil.which("fincore") is None, reason="needs util-linux's fincore")
def test_written_blocks_leave_the_page_cache_once_durable(tmp_path: Path) -> None:
    """Both ways a block is written (received from a peer, stored whole) leave none of its
    pages cached once it is placed: a large upload must not push a Pi's metadata out."""
    fs_type = subprocess.run(["stat", "-f", "-c", "%T", str(tmp_path)], capture_output=True, text=True,
                             timeout=30, check=True).stdout.strip()
    if fs_type == "tmpfs":   # its pages are the file itself: nothing to drop (no node keeps data there)
        pytest.skip("the test directory is on tmpfs")

    async def go() -> None:
        store = BlockStore(tmp_path / "blocks", "d1")
        received, whole = os.urandom(1 << 20), os.urandom(1 << 20)
        received_id, whole_id = new_block_id(received), new_block_id(whole)
        await (await store.receive(received_id, _pieces(received, 65536), 4 << 20)).finish()
        await store.put(whole_id, whole)
        for block in (received_id, whole_id):
            assert _cached_pages(store.path_of(block)) == 0, block
        # The check can fail: a plain buffered write stays cached (fincore sees it).
        plain = tmp_path / "plain"
        with open(plain, "wb") as f:
            f.write(received)
            f.flush()
            os.fsync(f.fileno())
        assert _cached_pages(plain) > 0
    run(go())
