#!/usr/bin/env python3
"""Where a small object's bytes go on one device: a breakdown of what each commit writes.

    .venv/bin/python benchmarks/wa_breakdown.py --dir /tmp/x --objects 2000 --writers 6

Runs one MetaStore in this process, `--writers` concurrent writers merging 4 KiB object
records (as replicas receive them), with SQLite's automatic checkpoint off, so the WAL
keeps every frame of the run. Reports records per commit, WAL frames per commit by B-tree
(the table or index each page belongs to, from dbstat), the bytes appended to body
segments (if the store has them), and this process's write_bytes per byte stored, WAL and
final checkpoint included (/proc/self/io: what the kernel sends to the card).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import struct
from collections import Counter
from pathlib import Path

from edgestore.store.meta import MetaStore
from edgestore.store.records import Record

VALUE = {"content_type": "binary/octet-stream", "meta": {}, "headers": {}, "acl": "private", "size": 4096,
         "etag": "8d83ac801bc3bd04d771d421d1e3fcef", "data_id": "f2a2c23003c59247", "owner": "default",
         "checksums": {"crc32": "KwnWZQ=="}}


def written() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("write_bytes:"))


def wal_frames(wal: Path, page_size: int) -> tuple[list[int], int]:
    """Page numbers of every frame, and the number of commit frames."""
    raw = wal.read_bytes()
    pages, commits, pos = [], 0, 32
    while pos + 24 + page_size <= len(raw):
        page, db_size = struct.unpack(">II", raw[pos:pos + 8])
        pages.append(page)
        commits += db_size != 0
        pos += 24 + page_size
    return pages, commits


async def run(path: Path, objects: int, writers: int, random_names: bool) -> None:
    store = MetaStore(path / "meta.db")
    store._writer.submit(lambda: store._wconn.execute("PRAGMA wal_autocheckpoint=0")).result()
    body = os.urandom(4096)
    before = written()

    async def writer(w: int) -> None:
        for i in range(w, objects, writers):
            key = os.urandom(8).hex() if random_names else f"{i:06d}"
            rec = Record("object", f"default/bench/wa/{key}", 1_000_000 + i, "node1", value=VALUE, data=body)
            await store.merge([(rec, 551)])
    await asyncio.gather(*(writer(w) for w in range(writers)))
    in_run = written() - before
    page_size = store._wconn.execute("PRAGMA page_size").fetchone()[0]
    pages, commits = wal_frames(path / "meta.db-wal", page_size)
    conn = sqlite3.connect(path / "meta.db")
    owner = dict(conn.execute("SELECT pageno, name FROM dbstat"))
    by_tree = Counter(owner.get(p, "page 1 / free" if p == 1 else "?") for p in pages)
    ckpt_before = written()   # before close: the last connection to close checkpoints too
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    at_checkpoint = written() - ckpt_before
    store.close()
    segments = sum(f.stat().st_size for f in path.glob("meta.db.segments/*"))
    stored = objects * 4096
    print(json.dumps({
        "commits": commits, "records_per_commit": round(objects / max(commits, 1), 2),
        "wal_frames_per_commit": round(len(pages) / max(commits, 1), 2),
        "wal_frames_per_commit_by_tree": {k: round(v / max(commits, 1), 2) for k, v in by_tree.most_common()},
        "segment_bytes_per_object": round(segments / objects),
        "written_in_run_per_object": round(in_run / objects), "written_at_checkpoint_per_object":
            round(at_checkpoint / objects),
        "write_amplification": round((in_run + at_checkpoint) / stored, 2)}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=6)
    parser.add_argument("--random-names", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    try:
        asyncio.run(run(args.dir, args.objects, args.writers, args.random_names))
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
