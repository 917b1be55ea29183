"""Lean listing pages of one device (real SQLite), their merge over replicas, and the
per-bucket counters the store's triggers keep."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edgestore.cluster.internal_api import page_with_counters, split_page_with_counters
from edgestore.cluster.listing import CommonPrefix, merge_pages
from edgestore.store.listing import list_rows_sync
from edgestore.store.meta import MetaStore
from edgestore.store.records import Record


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def obj(key: str, ts: int, deleted: bool = False, size: int = 1, **value: Any) -> tuple[Record, int]:
    return Record("object", f"a/b/{key}", ts, "n1", deleted, {} if deleted else {"size": size, **value}), 1


def names(items: list[list[Any]]) -> list[str]:
    return [i[0] if len(i) > 2 else "P:" + i[0] for i in items]


def test_rows_carry_the_fields_asked_for_and_tombstones(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            await meta.merge([obj("x", 3, size=7, etag="e"), obj("y", 4, deleted=True)])
            rows = await meta.list_rows("object", "a/b/", None, 10, fields=("size", "etag", "slo.size"))
            assert rows == [["a/b/x", 3, "n1", 0, 7, "e", None], ["a/b/y", 4, "n1", 1, None, None, None]]
        finally:
            meta.close()
    run(go())


def test_a_delimiter_rolls_up_prefixes_with_a_live_row_only(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            await meta.merge([obj("d1/a", 1), obj("d1/b", 1), obj("d2/a", 1, deleted=True),
                              obj("d3/a", 1, deleted=True), obj("d3/b", 2), obj("d4/a", 1, delete_at=100),
                              obj("top", 1), obj("z/q/r", 1)])
            rows = await meta.list_rows("object", "a/b/", None, 100, delimiter="/", now=200.0)
            # d2 holds only a tombstone, d4 only an expired object; d3's witness is its live row.
            assert rows == [["a/b/d1/", "a/b/d1/a"], ["a/b/d3/", "a/b/d3/b"], ["a/b/top", 1, "n1", 0],
                            ["a/b/z/", "a/b/z/q/r"]]
            before_expiry = await meta.list_rows("object", "a/b/", None, 100, delimiter="/", now=50.0)
            assert "P:a/b/d4/" in names(before_expiry)
            # Paging: a limit counts prefixes, and `after` a prefix skips all of it.
            assert names(await meta.list_rows("object", "a/b/", None, 2, delimiter="/", now=200.0)) == \
                ["P:a/b/d1/", "P:a/b/d3/"]
            assert names(await meta.list_rows("object", "a/b/", "a/b/d3/", 2, delimiter="/", now=200.0)) == \
                ["a/b/top", "P:a/b/z/"]
            # A prefix under the listing's prefix, and a multi-character delimiter.
            assert names(await meta.list_rows("object", "a/b/z/", None, 10, delimiter="/")) == ["P:a/b/z/q/"]
            assert names(await meta.list_rows("object", "a/b/", None, 10, delimiter="/a")) == \
                ["P:a/b/d1/a", "a/b/d1/b", "a/b/d3/b", "P:a/b/d4/a", "a/b/top", "a/b/z/q/r"]
        finally:
            meta.close()
    run(go())


def page(*items: Any) -> list[list[Any]]:
    return [list(i) for i in items]


def test_merged_pages_keep_the_newest_version_and_stop_at_the_frontier() -> None:
    a = page(("k1", 1, "n", 0, 5), ("k2", 3, "n", 1, None), ("k4", 1, "n", 0, 5))
    b = page(("k1", 2, "n", 0, 6), ("k3", 1, "n", 0, 5))
    merged = merge_pages([a, b], 3)
    # a was full: past its last name b may hold names a has not sent yet; b was not.
    assert merged.frontier == "k4"
    assert merged.items == [["k1", 2, "n", 0, 6], ["k2", 3, "n", 1, None], ["k3", 1, "n", 0, 5], ["k4", 1, "n", 0, 5]]
    assert merge_pages([a, b], 10).frontier is None
    both_full = merge_pages([b, page(("k1", 2, "n", 0, 6), ("k2", 1, "n", 0, 5))], 2)
    assert both_full.frontier == "k2" and [i[0] for i in both_full.items] == ["k1", "k2"]


def test_a_common_prefix_is_disputed_unless_every_replica_names_the_same_witness() -> None:
    agreed = page(("p/", "p/a"), ("x", 1, "n", 0))
    assert merge_pages([agreed, agreed], 10).disputed == set()
    # A stale replica still holds p/a live; the other has its tombstone and nothing else
    # under p/: the union would resurrect p/, so p/ must be checked record by record.
    stale = merge_pages([agreed, page(("x", 1, "n", 0))], 10)
    assert stale.disputed == {"p/"} and stale.items[0] == CommonPrefix("p/")
    assert merge_pages([agreed, page(("p/", "p/b"), ("x", 1, "n", 0))], 10).disputed == {"p/"}


def test_counters_follow_writes_overwrites_deletes_and_reclaim(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            assert await meta.bucket_counters("a/b") is None
            await meta.merge([obj("x", 1, size=10), obj("y", 1, size=5), obj("d/z", 2, size=1)])
            assert await meta.bucket_counters("a/b") == (3, 16, 2)
            await meta.merge([obj("x", 3, size=100)])            # overwrite
            await meta.merge([obj("y", 0, size=999)])            # older: loses, changes nothing
            await meta.merge([obj("y", 4, deleted=True)])        # delete
            assert await meta.bucket_counters("a/b") == (2, 101, 4)
            await meta.merge([obj("y", 5, size=2)])              # written again over its tombstone
            assert await meta.bucket_counters("a/b") == (3, 103, 5)
            await meta.merge([obj("y", 6, deleted=True)])
            await meta.reclaim_tombstones(100)                    # dropping a tombstone: no change
            assert await meta.bucket_counters("a/b") == (2, 101, 6)
            await meta.merge([(Record("object", "a/c/k", 7, "n1", False, {"size": 3}), 2)])
            assert await meta.bucket_counters("a/c") == (1, 3, 7)
            assert await meta.bucket_counters("a/b") == (2, 101, 6)
        finally:
            meta.close()
    run(go())


def test_counters_are_computed_for_a_database_written_before_they_existed(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        await meta.merge([obj("x", 1, size=10), obj("y", 2, deleted=True), obj("z", 3, size=4, delete_at=50)])
        meta.close()
        conn = sqlite3.connect(tmp_path / "meta.db")   # back to a version-2 database
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                    "(name LIKE 'records_count%' OR name LIKE 'records_expiring%')").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE bucket_counters")
        conn.execute("DROP TABLE bucket_expiring")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
        reopened = MetaStore(tmp_path / "meta.db")
        try:
            assert await reopened.bucket_counters("a/b") == (2, 14, 3)
            assert await reopened.bucket_counters("a/b", now=60) == (1, 10, 3)
            await reopened.merge([obj("w", 4, size=1)])
            assert await reopened.bucket_counters("a/b", now=60) == (2, 11, 4)
        finally:
            reopened.close()
    run(go())


def test_the_json_page_for_a_peer_is_the_page(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            await meta.merge([obj("x", 3, size=7, etag="é\"q"), obj("y", 4, deleted=True), obj("z/w", 5)])
            fields = ("size", "etag", "slo.size")
            for prefix, after, delimiter in (("a/b/", None, ""), ("a/b/", "a/b/x", ""), ("a/b/q", None, ""),
                                             ("a/b/", "a/", ""), ("a/b/", None, "/")):
                page = await meta.list_rows("object", prefix, after, 10, delimiter, fields, 0.0)
                text = await meta.list_rows_json("object", prefix, after, 10, delimiter, fields, 0.0)
                assert json.loads(text) == page, (prefix, after, delimiter)
        finally:
            meta.close()
    run(go())


def test_a_page_with_counters_splits_back_into_both(tmp_path: Path) -> None:
    """The answer to a Swift container GET's page: the page, then the counters, in one body.
    Keys and values with newlines must not move the split."""
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            await meta.merge([obj("line\nbreak", 3, size=7, etag="a\nb"), obj("z/w", 5, size=2)])
            text = await meta.list_rows_json("object", "a/b/", None, 10, "", ("size", "etag"), 0.0)
            counted = await meta.bucket_counters("a/b", 0.0)
            assert counted is not None and counted[:2] == (2, 9)
            assert split_page_with_counters(page_with_counters(text, counted)) == (text, counted)
            assert split_page_with_counters(page_with_counters(text, None)) == (text, None)
            assert split_page_with_counters(text) is None   # a peer older than the question
            for tail in (b"[1,2]", b'["1",2,3]', b"{}", b"[1,2,3.5]"):
                with pytest.raises(ValueError):
                    split_page_with_counters(text + b"\n" + tail)
        finally:
            meta.close()
    run(go())


def test_counters_leave_out_objects_expired_at_the_time_asked(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            await meta.merge([obj("keep", 1, size=10), obj("soon", 1, size=5, delete_at=100),
                              obj("later", 1, size=3, delete_at=200)])
            assert await meta.bucket_counters("a/b", now=99) == (3, 18, 1)
            assert await meta.bucket_counters("a/b", now=100) == (2, 13, 1)
            await meta.merge([obj("later", 2, size=4)])               # its expiry removed by a POST
            assert await meta.bucket_counters("a/b", now=500) == (2, 14, 2)
            await meta.merge([obj("soon", 3, deleted=True)])          # the expirer's delete
            assert await meta.bucket_counters("a/b", now=500) == (2, 14, 3)
            assert await meta.bucket_counters("a/b", now=0) == (2, 14, 3)
        finally:
            meta.close()
    run(go())


def test_counters_read_again_without_a_change_need_not_wait_for_the_writer(tmp_path: Path) -> None:
    async def go() -> None:
        meta = MetaStore(tmp_path / "meta.db")
        try:
            await meta.merge([obj("x", 1, size=10)])
            # (the first commit after a write may fold the tallies, a change: read twice)
            for _ in range(2):
                assert await meta.bucket_counters("a/b", now=50) == (1, 10, 1)
            busy = threading.Event()
            meta._writer.submit(busy.wait, 30)   # the writer thread is busy (a long commit)
            try:
                assert await asyncio.wait_for(meta.bucket_counters("a/b", now=60), 5) == (1, 10, 1)
                with pytest.raises(TimeoutError):   # not read yet: this one must wait
                    await asyncio.wait_for(asyncio.shield(meta.bucket_counters("a/c", now=60)), 0.3)
            finally:
                busy.set()
            # A read in the same group commit as a write stands for nothing after it.
            _, during = await asyncio.gather(meta.merge([obj("y", 2, size=5)]), meta.bucket_counters("a/b", now=60))
            assert during in ((1, 10, 1), (2, 15, 2))
            assert await meta.bucket_counters("a/b", now=60) == (2, 15, 2)
            await meta.merge([obj("x", 3, deleted=True)])
            assert await meta.bucket_counters("a/b", now=60) == (1, 5, 3)
        finally:
            meta.close()
    run(go())


# Names over a small alphabet with the characters at the edges of prefix_end: "/" (the
# usual delimiter), U+10FFFF (no successor), U+D7FF (whose successor skips the surrogates).
_CHARS = st.sampled_from(["a", "b", "/", "\U0010ffff", "\ud7ff", "\ue000", "é"])
_NAMES = st.text(_CHARS, min_size=1, max_size=5)


def reference_page(rows: dict[str, tuple[int, bool, int | None]], prefix: str, after: str | None, limit: int,
                   delimiter: str, now: float) -> list[list[Any]]:
    """What a page must hold, computed name by name from the module doc's rules."""
    def live(name: str) -> bool:
        _, deleted, delete_at = rows[name]
        return not deleted and (delete_at is None or delete_at > now)

    names = sorted(name for name in rows if name.startswith(prefix))
    if after is not None and after >= prefix:
        rolled = bool(delimiter) and after.endswith(delimiter) and after.find(delimiter, len(prefix)) == \
            len(after) - len(delimiter)
        names = [n for n in names if n > after and not (rolled and n.startswith(after))]
    items: list[list[Any]] = []
    done: set[str] = set()
    for name in names:
        at = name.find(delimiter, len(prefix)) if delimiter else -1
        if at < 0:
            ts, deleted, delete_at = rows[name]
            items.append([name, ts, "n1", int(deleted), delete_at])
        else:
            common = name[:at + len(delimiter)]
            if common in done:
                continue
            done.add(common)
            witness = next((n for n in sorted(rows) if n.startswith(common) and live(n)), None)
            if witness is None:
                continue
            items.append([common, witness])
        if len(items) >= limit:
            break
    return items


@settings(max_examples=300, deadline=None)
# Once found at random: `after` inside the common prefix, past its first (live) name.
@example(rows={"\ud7ff": (1, False, None), "\ud7ffb": (1, False, None)}, prefix="", after="\ud7ffa", limit=1,
         delimiter="\ud7ff", roll_after=False)
@given(rows=st.dictionaries(_NAMES, st.tuples(st.integers(1, 9), st.booleans(), st.sampled_from([None, 50, 150])),
                            max_size=20),
       prefix=st.text(_CHARS, max_size=2), after=st.none() | st.text(_CHARS, max_size=4),
       limit=st.integers(1, 6),
       delimiter=st.sampled_from(["", "/", "/", "a/", "\ud7ff", "\U0010ffff", "\U0010ffff" * 2]),
       roll_after=st.booleans())
def test_a_page_is_what_the_rules_say_name_by_name(rows: dict[str, tuple[int, bool, int | None]], prefix: str,
                                                   after: str | None, limit: int, delimiter: str,
                                                   roll_after: bool) -> None:
    """The page SQLite writes in one statement (a recursive walk with a delimiter) against
    the rules applied name by name, with the characters where prefix ends are tricky."""
    if roll_after and after is not None and delimiter:
        after = prefix + after.replace(delimiter, "") + delimiter   # `after` a common prefix
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE records (kind TEXT NOT NULL, name TEXT NOT NULL, ts INTEGER NOT NULL,"
                 " node TEXT NOT NULL, deleted INTEGER NOT NULL, value TEXT NOT NULL, PRIMARY KEY (kind, name))")
    for name, (ts, deleted, delete_at) in rows.items():
        value = {} if deleted else {"size": 1, **({"delete_at": delete_at} if delete_at is not None else {})}
        conn.execute("INSERT INTO records VALUES ('object', ?, ?, 'n1', ?, ?)",
                     (name, ts, int(deleted), json.dumps(value)))
        conn.execute("INSERT INTO records VALUES ('other', ?, 1, 'n1', 0, '{}')", (name,))  # another kind: never listed
    want = reference_page({n: (ts, d, None if d else at) for n, (ts, d, at) in rows.items()}, prefix, after, limit,
                          delimiter, 100.0)
    assert list_rows_sync(conn, "object", prefix, after, limit, delimiter, ("delete_at",), 100.0) == want
