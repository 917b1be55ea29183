"""Garbage collection on a real cluster: the blocks of overwritten, deleted and aborted
data, and of bodies whose client went away mid-upload, are deleted from every node;
blocks still used — by a copy whose source is gone, by an older version, by a completed
multipart upload, by anything written within the grace period — never are; tombstones
past the reclaim age are reclaimed; a body too slow for the grace period is refused."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from botocore.exceptions import ClientError
from clusterlib import LocalCluster
from conftest import make_s3, unique_bucket_name
from opslib import cli, cluster_with_repair_interval, locate, summary
from swiftlib import Swift, swift_login

from edgestore.config import NodeConfig
from edgestore.store.blocks import block_file

MIB = 1024 * 1024
BLOCK = NodeConfig.block_size_bytes  # the size bodies are cut into


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with cluster_with_repair_interval(tmp_path_factory.mktemp("gc"), 3600) as local:
        yield local


@pytest.fixture
def s3(cluster: LocalCluster) -> Any:
    return make_s3(cluster.endpoint, *cluster.credentials)


@pytest.fixture
def bucket(s3: Any, request: pytest.FixtureRequest) -> str:
    name = unique_bucket_name("gc", request)
    s3.create_bucket(Bucket=name)
    return name


def blocks_of(cluster: LocalCluster, bucket: str, key: str) -> set[str]:
    return {b["block"] for b in locate(cluster, bucket, key)["blocks"]}


def on_disk(cluster: LocalCluster, blocks: set[str]) -> set[str]:
    """Which of these blocks still have a file on some node."""
    found = set()
    for index in range(cluster.nodes):
        root = Path(cluster.node(index)["data_dir"]) / "d1" / "blocks"
        found |= {b for b in blocks if block_file(root, b).exists()}
    return found


def copy_entries(cluster: LocalCluster, bucket: str, key: str) -> int:
    """Live `datause` index entries (one per copy made) naming this object, over every device."""
    total = 0
    for index in range(cluster.nodes):
        db = Path(cluster.node(index)["data_dir"]) / "d1" / "meta.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            total += conn.execute("SELECT COUNT(*) FROM records WHERE kind = 'datause' AND deleted = 0 AND name LIKE ?",
                                  (f"%/{bucket}/{key}",)).fetchone()[0]
    return total


def all_block_files(cluster: LocalCluster) -> set[str]:
    found: set[str] = set()
    for index in range(cluster.nodes):
        root = Path(cluster.node(index)["data_dir"]) / "d1" / "blocks"
        found |= {path.name for path in root.rglob("*") if path.is_file() and "." not in path.name}
    return found


def swift_at(cluster: LocalCluster, node: int) -> Swift:
    """The admin's Swift account, through node `node`."""
    login = swift_login(cluster, "default:admin", cluster.credentials[1])
    return Swift(cluster.url(node).rstrip("/") + "/v1/" + login.url.split("/v1/", 1)[1], login.token)


def collect(cluster: LocalCluster, *extra: str) -> dict[str, int]:
    return summary(cli(cluster, "gc", "--now", "--grace", "0", *extra))


def test_freed_blocks_are_deleted_and_live_ones_kept(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="over", Body=os.urandom(2 * MIB + 5))
    old = blocks_of(cluster, bucket, "over")
    new_body = os.urandom(2 * MIB + 9)
    s3.put_object(Bucket=bucket, Key="over", Body=new_body)
    new = blocks_of(cluster, bucket, "over")
    s3.put_object(Bucket=bucket, Key="gone", Body=os.urandom(3 * MIB))
    deleted = blocks_of(cluster, bucket, "gone")
    s3.delete_object(Bucket=bucket, Key="gone")
    assert on_disk(cluster, old | deleted) == old | deleted
    counts = collect(cluster)
    assert counts["collected"] >= len(old | deleted), counts
    assert on_disk(cluster, old | deleted) == set()
    assert on_disk(cluster, new) == new
    assert s3.get_object(Bucket=bucket, Key="over")["Body"].read() == new_body


def test_a_copy_keeps_its_source_blocks_after_the_source_is_deleted(cluster: LocalCluster, s3: Any,
                                                                      bucket: str) -> None:
    body = os.urandom(2 * MIB + 3)
    s3.put_object(Bucket=bucket, Key="source", Body=body)
    shared = blocks_of(cluster, bucket, "source")
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "source"})
    assert blocks_of(cluster, bucket, "copy") == shared      # nothing was copied
    s3.delete_object(Bucket=bucket, Key="source")
    collect(cluster)
    assert on_disk(cluster, shared) == shared
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == body
    assert copy_entries(cluster, bucket, "copy") > 0
    s3.delete_object(Bucket=bucket, Key="copy")
    collect(cluster)
    assert on_disk(cluster, shared) == set()
    assert copy_entries(cluster, bucket, "copy") == 0    # the deleted copy's index entry went too


def test_older_versions_and_completed_uploads_keep_their_blocks(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = os.urandom(2 * MIB + 1)
    v1 = s3.put_object(Bucket=bucket, Key="versioned", Body=first)["VersionId"]
    s3.put_object(Bucket=bucket, Key="versioned", Body=os.urandom(2 * MIB + 2))
    upload = s3.create_multipart_upload(Bucket=bucket, Key="joined")["UploadId"]
    parts_body = [os.urandom(5 * MIB), os.urandom(MIB + 7)]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="joined", UploadId=upload, PartNumber=n,
                                                      Body=data)["ETag"]}
             for n, data in enumerate(parts_body, 1)]
    s3.complete_multipart_upload(Bucket=bucket, Key="joined", UploadId=upload, MultipartUpload={"Parts": parts})
    abandoned = s3.create_multipart_upload(Bucket=bucket, Key="abandoned")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="abandoned", UploadId=abandoned, PartNumber=1, Body=os.urandom(2 * MIB))
    s3.abort_multipart_upload(Bucket=bucket, Key="abandoned", UploadId=abandoned)
    counts = collect(cluster)
    assert counts["collected"] >= 2, counts          # the aborted part's blocks
    assert s3.get_object(Bucket=bucket, Key="versioned", VersionId=v1)["Body"].read() == first
    assert s3.get_object(Bucket=bucket, Key="joined")["Body"].read() == b"".join(parts_body)
    joined = blocks_of(cluster, bucket, "joined")
    assert on_disk(cluster, joined) == joined


def test_recently_freed_blocks_wait_for_the_grace_period(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="young", Body=os.urandom(2 * MIB))
    young = blocks_of(cluster, bucket, "young")
    s3.delete_object(Bucket=bucket, Key="young")
    counts = summary(cli(cluster, "gc", "--now"))       # the configured grace: hours
    assert counts["collected"] == 0
    assert on_disk(cluster, young) == young


def test_tombstones_past_the_reclaim_age_are_reclaimed(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"t{i}", Body=b"x")
        s3.delete_object(Bucket=bucket, Key=f"t{i}")
    counts = collect(cluster, "--reclaim-age", "0")
    assert counts["tombstones reclaimed"] >= 5 * 3, counts     # on each replica
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="t0")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_blocks_of_a_body_abandoned_mid_upload_are_collected(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    """A client that goes away mid-body leaves blocks no record names: each stored block
    is a candidate once, so they do not stay on the cards forever."""
    swift = swift_at(cluster, 0)
    before = all_block_files(cluster)

    def body_then_gone() -> Iterator[bytes]:
        for _ in range(3):
            yield os.urandom(BLOCK)
        raise ConnectionAbortedError("the client went away")

    with pytest.raises(requests.ConnectionError):
        swift("PUT", f"/{bucket}/abandoned", data=body_then_gone())
    orphans: set[str] = set()
    for _ in range(50):     # the node may still be storing the last block it read
        time.sleep(0.2)
        latest = all_block_files(cluster) - before
        if latest and latest == orphans:
            break
        orphans = latest
    assert orphans, "the abandoned body stored no block: nothing to test"
    assert swift("HEAD", f"/{bucket}/abandoned").status_code == 404
    kept = os.urandom(2 * MIB + 1)
    s3.put_object(Bucket=bucket, Key="kept", Body=kept)
    collect(cluster)
    assert all_block_files(cluster) & orphans == set()
    live = blocks_of(cluster, bucket, "kept")
    assert on_disk(cluster, live) == live
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == kept


# -- configuration (last: it restarts a node) -----------------------------------------------


def test_a_body_slower_than_half_the_grace_period_is_refused(cluster: LocalCluster, bucket: str) -> None:
    """Its first blocks could be taken for an abandoned upload's before its record is
    written: the client gets 408 (send it in segments or faster), and no object."""
    node = cluster.nodes - 1
    config = Path(cluster.node(node)["config"])
    config.write_text(config.read_text().replace("[repair]\n", "[repair]\ngc_grace_s = 2.0\n", 1))
    assert "gc_grace_s = 2.0" in config.read_text()
    cluster.kill(node, signal.SIGTERM)
    cluster.restart(node)
    swift = swift_at(cluster, node)

    def slow_body() -> Iterator[bytes]:
        yield os.urandom(2 * MIB)
        time.sleep(1.5)
        yield os.urandom(MIB)

    refused = swift("PUT", f"/{bucket}/slow", data=slow_body())
    assert refused.status_code == 408, refused.text
    assert "segments" in refused.text
    assert swift("HEAD", f"/{bucket}/slow").status_code == 404
    assert swift("PUT", f"/{bucket}/quick", data=os.urandom(3 * MIB)).status_code == 201
