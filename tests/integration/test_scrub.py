"""Bytes rot on one node's card — in a block file, in a small object's body in a segment
file, in the metadata database's own structure: clients keep getting the right bytes from the
other replicas, `edgestore scrub --now` finds each damage, takes it out of service and
restores it, and every copy is present and intact afterwards."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest
from acked import Model
from clusterlib import LocalCluster
from conftest import make_s3, unique_bucket_name
from opslib import cli, cluster_with_repair_interval, locate, summary

from edgestore.store.blocks import block_file


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    # Passes run only when a test asks, so each test sees the damage it made.
    with cluster_with_repair_interval(tmp_path_factory.mktemp("ops"), 3600) as local:
        yield local


def node_index(cluster: LocalCluster, url: str) -> int:
    return next(i for i in range(cluster.nodes) if cluster.url(i) == url)


def device_dir(cluster: LocalCluster, index: int) -> Path:
    return Path(cluster.node(index)["data_dir"]) / "d1"


def all_intact(where: dict[str, Any]) -> bool:
    copies = where["replicas"] + [r for b in where["blocks"] for r in b["replicas"]]
    return all(c["present"] and c["intact"] for c in copies)


def read_everywhere(cluster: LocalCluster, model: Model, bucket: str) -> None:
    """Every node answers every acknowledged object with the right bytes."""
    for index in range(cluster.nodes):
        model.check(make_s3(cluster.url(index), *cluster.credentials), bucket)


def flip(path: Path, offset: int) -> None:
    offset %= path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def checkpoint(db: Path) -> None:
    """Fold the WAL into the main file (the node is stopped), so the bytes we damage are
    the ones SQLite reads, not a WAL frame its own checksum would catch."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def record_pages(db: Path) -> list[tuple[int, int]]:
    """(offset, length) of the records table's pages but its root, whatever the page size
    and wherever the schema's own pages lie between them."""
    conn = sqlite3.connect(db)
    try:
        size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        pages = conn.execute("SELECT pageno FROM dbstat WHERE name = 'records' AND pagetype != 'internal' "
                             "AND pageno != (SELECT rootpage FROM sqlite_schema WHERE name = 'records')").fetchall()
        return [((page - 1) * size, size) for (page,) in pages]
    finally:
        conn.close()


@pytest.fixture
def bucket(cluster: LocalCluster, request: pytest.FixtureRequest) -> str:
    name = unique_bucket_name("rot", request)
    make_s3(cluster.endpoint, *cluster.credentials).create_bucket(Bucket=name)
    return name


def test_a_rotten_block_file_is_never_served_and_scrub_restores_it(cluster: LocalCluster, bucket: str) -> None:
    s3, model = make_s3(cluster.endpoint, *cluster.credentials), Model()
    model.put(s3, bucket, "big", os.urandom(3 * 1024 * 1024 + 77))
    where = locate(cluster, bucket, "big")
    damaged = 0
    for block in where["blocks"]:
        victim = node_index(cluster, block["replicas"][0]["node"])
        path = block_file(device_dir(cluster, victim) / "blocks", block["block"])
        flip(path, 1000)
        damaged += 1
    read_everywhere(cluster, model, bucket)   # (reads may quarantine what they meet)
    counts = summary(cli(cluster, "scrub", "--now"))
    after = locate(cluster, bucket, "big")
    assert all_intact(after), after
    # Each damaged file was found (by the scrub, or by a read before it) and replaced.
    assert counts["checked"] > 0 and counts["quarantined"] >= damaged and counts["repaired"] >= damaged, counts
    quarantined = sum(len(list((device_dir(cluster, i) / "blocks" / "quarantine").iterdir()))
                      for i in range(cluster.nodes))
    assert quarantined >= damaged
    read_everywhere(cluster, model, bucket)


def test_a_rotten_piece_in_the_middle_of_a_block_costs_a_reader_nothing(cluster: LocalCluster, bucket: str) -> None:
    """A GET reads a block by checked pieces, this node's replica first. Rot in the middle of
    that replica is found before a byte of it is sent: the file is quarantined and the rest of
    the block comes from another replica, so the client gets every byte right, in one GET."""
    s3 = make_s3(cluster.endpoint, *cluster.credentials)
    body = os.urandom(9 * 1024 * 1024 + 5)
    s3.put_object(Bucket=bucket, Key="pieced", Body=body)
    block = locate(cluster, bucket, "pieced")["blocks"][0]
    reader = node_index(cluster, block["replicas"][0]["node"])
    path = block_file(device_dir(cluster, reader) / "blocks", block["block"])
    assert path.name.endswith("-p16") and path.stat().st_size > 2 * 1024 * 1024
    flip(path, 2 * 1024 * 1024 + 5)   # past the first two stretches a GET sends
    got = make_s3(cluster.url(reader), *cluster.credentials).get_object(Bucket=bucket, Key="pieced")["Body"].read()
    assert got == body
    assert not path.exists(), "the reader met the rot, and took its replica out of service"
    assert (device_dir(cluster, reader) / "blocks" / "quarantine" / block["block"]).exists()
    summary(cli(cluster, "scrub", "--now"))
    assert all_intact(locate(cluster, bucket, "pieced"))


def test_rotten_small_object_bytes_in_a_segment_file_are_caught(cluster: LocalCluster, bucket: str) -> None:
    s3, model = make_s3(cluster.endpoint, *cluster.credentials), Model()
    body = b"sensor reading " + os.urandom(1500) + b" end of reading"
    model.put(s3, bucket, "small", body)
    replica = locate(cluster, bucket, "small")["replicas"][0]
    victim = node_index(cluster, replica["node"])
    cluster.kill(victim)
    db = device_dir(cluster, victim) / "meta.db"
    checkpoint(db)
    assert body[:64] not in db.read_bytes(), "a small body is in the database, not in a segment"
    holding = [(seg, seg.read_bytes().find(body[:64])) for seg in (db.parent / "meta.db.segments").glob("*.seg")]
    seg, offset = next((seg, offset) for seg, offset in holding if offset >= 0)
    flip(seg, offset + 20)
    cluster.restart(victim)
    read_everywhere(cluster, model, bucket)
    where = locate(cluster, bucket, "small")
    assert not all_intact(where), "the damage is not visible to locate"
    counts = summary(cli(cluster, "scrub", "--now"))
    assert counts["quarantined"] >= 1 and counts["repaired"] >= 1, counts
    assert all_intact(locate(cluster, bucket, "small"))
    read_everywhere(cluster, model, bucket)


@pytest.mark.parametrize("where", ["pages", "header"])
def test_a_damaged_database_file_is_quarantined_and_refilled(cluster: LocalCluster, bucket: str, where: str) -> None:
    s3, model = make_s3(cluster.endpoint, *cluster.credentials), Model()
    for i in range(30):
        model.put(s3, bucket, f"obj-{i}", os.urandom(2_000_000 if i % 10 == 0 else 900 + i))
    victim = node_index(cluster, locate(cluster, bucket, "obj-0")["replicas"][0]["node"])
    cluster.kill(victim)
    db = device_dir(cluster, victim) / "meta.db"
    checkpoint(db)
    stretches = [(0, 100)] if where == "header" else record_pages(db)
    assert stretches
    with open(db, "r+b") as f:   # garbage over the records' pages (or over the header)
        for offset, length in stretches:
            f.seek(offset)
            f.write(os.urandom(length))
    cluster.restart(victim)
    read_everywhere(cluster, model, bucket)
    scrub = summary(cli(cluster, "scrub", "--now"))
    # Found by the scrub, or already at the restart: a database whose writer was killed
    # has its digests and counters rebuilt from every row (store/tallies.py), which reads
    # the garbled pages too (and a garbled header fails the open itself).
    at_open = any((device_dir(cluster, victim) / "quarantine").glob("meta-*"))
    assert at_open or scrub["quarantined"] >= 1, scrub
    cli(cluster, "repair", "--now")
    cli(cluster, "repair", "--now")
    quarantined_dbs = list((device_dir(cluster, victim) / "quarantine").glob("meta-*"))
    assert quarantined_dbs, "the damaged database was not moved aside"
    for key in ("obj-0", "obj-10", "obj-20", "obj-5"):
        assert all_intact(locate(cluster, bucket, key)), key
    read_everywhere(cluster, model, bucket)


def test_a_node_reads_its_own_replica_first_and_skips_it_when_rotten(cluster: LocalCluster, bucket: str) -> None:
    s3, model = make_s3(cluster.url(0), *cluster.credentials), Model()
    model.put(s3, bucket, "local", os.urandom(6 * 1024 * 1024 + 5))
    quarantine = device_dir(cluster, 0) / "blocks" / "quarantine"
    before = len(list(quarantine.iterdir()))
    damaged = 0
    for block in locate(cluster, bucket, "local")["blocks"]:
        if any(node_index(cluster, r["node"]) == 0 for r in block["replicas"]):
            flip(block_file(device_dir(cluster, 0) / "blocks", block["block"]), 7)
            damaged += 1
    assert damaged > 0
    model.check(s3, bucket)   # the right bytes, from another replica
    # Node 0 went to its own copy of each of those blocks first, whatever the ring order,
    # found it rotten and took it out of service.
    assert len(list(quarantine.iterdir())) - before == damaged
    cli(cluster, "scrub", "--now")
    assert all_intact(locate(cluster, bucket, "local"))
