"""A node whose wall clock lags (a Pi that booted without network time) must not lose the
overwrites it coordinates to older writes made through its peers: last writer wins must
mean the last acknowledged write, not the one with the larger wall-clock reading."""

from __future__ import annotations

import glob
from typing import Any

import pytest
from conftest import make_s3
from edgestore.ring import load_ring

# The library, not the faketime command: the command forks, and stopping it would orphan the node.
LIBFAKETIME = next(iter(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")), None)
pytestmark = pytest.mark.skipif(LIBFAKETIME is None, reason="needs libfaketime (apt-get install faketime)")

LAG = "-90s"  # behind, but within the 300 s the internal API accepts


@pytest.fixture(scope="module")
def lagging(cluster: Any) -> int:
    """Node 1, restarted with a wall clock LAG behind the others'."""
    index = 1
    cluster.kill(index)
    # The clock the node reads lags; its event loop's monotonic clock is left alone.
    assert LIBFAKETIME is not None
    cluster.restart(index, env={"LD_PRELOAD": LIBFAKETIME, "FAKETIME": LAG, "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    return index


def test_overwrites_through_a_lagging_node_win(cluster: Any, lagging: int) -> None:
    on_time = make_s3(cluster.url(0), *cluster.credentials)
    behind = make_s3(cluster.url(lagging), *cluster.credentials)
    readers = [make_s3(cluster.url(i), *cluster.credentials) for i in (2, 3)]
    on_time.create_bucket(Bucket="skew")
    for round_ in range(6):
        writer = behind if round_ % 2 else on_time
        body = f"round {round_}".encode() * (1 + round_ * 5000)  # inline and block-sized both
        writer.put_object(Bucket="skew", Key="doc", Body=body)
        for reader in readers:
            assert reader.get_object(Bucket="skew", Key="doc")["Body"].read() == body, round_
    behind.delete_object(Bucket="skew", Key="doc")
    for reader in readers:
        assert reader.list_objects_v2(Bucket="skew")["KeyCount"] == 0


def bucket_not_stored_on(cluster: Any, index: int) -> str:
    """A bucket name whose objects the node does not store: no write to it reaches that node,
    so nothing but its own (lagging) wall clock sets the timestamps it writes with."""
    ring = load_ring(cluster.info["ring"])
    port = int(cluster.url(index).rsplit(":", 1)[1])
    for n in range(1000):
        name = f"skew-versions-{n}"
        part = ring.partition_for_path(f"/{cluster.info['account']}/{name}")
        if all(d.port != port for d in ring.primaries(part)):
            return name
    raise AssertionError("every bucket name tried lands on the node")


def test_versions_written_through_a_lagging_node_keep_their_order(cluster: Any, lagging: int) -> None:
    """In a versioned bucket every write is a version of its own: the newest acknowledged
    one must be listed first and marked latest, whichever node's clock wrote it."""
    on_time = make_s3(cluster.url(0), *cluster.credentials)
    behind = make_s3(cluster.url(lagging), *cluster.credentials)
    reader = make_s3(cluster.url(2), *cluster.credentials)
    bucket = bucket_not_stored_on(cluster, lagging)
    on_time.create_bucket(Bucket=bucket)
    on_time.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    written = []
    for round_ in range(4):
        writer = behind if round_ % 2 else on_time
        answer = writer.put_object(Bucket=bucket, Key="doc", Body=f"version {round_}".encode())
        written.append(answer["VersionId"])
        listed = reader.list_object_versions(Bucket=bucket)["Versions"]
        assert [v["VersionId"] for v in listed] == written[::-1], round_
        assert [v["IsLatest"] for v in listed] == [True] + [False] * round_
        assert reader.get_object(Bucket=bucket, Key="doc")["Body"].read() == f"version {round_}".encode()
    for round_, version_id in enumerate(written):
        got = reader.get_object(Bucket=bucket, Key="doc", VersionId=version_id)["Body"].read()
        assert got == f"version {round_}".encode()
