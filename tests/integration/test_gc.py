"""Garbage collection on a real cluster: the blocks of overwritten, deleted and aborted
data are deleted from every node; blocks still used — by a copy whose source is gone, by
an older version, by a completed multipart upload, by anything written within the grace
period — never are; tombstones past the reclaim age are reclaimed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from botocore.exceptions import ClientError
from clusterlib import LocalCluster
from conftest import make_s3, unique_bucket_name
from opslib import cli, cluster_with_repair_interval, locate, summary

from edgestore.store.blocks import block_file

MIB = 1024 * 1024


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
    s3.delete_object(Bucket=bucket, Key="copy")
    collect(cluster)
    assert on_disk(cluster, shared) == set()


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
