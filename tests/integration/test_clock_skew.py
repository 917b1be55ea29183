"""A node whose wall clock lags (a Pi that booted without network time) must not lose the
overwrites it coordinates to older writes made through its peers: last writer wins must
mean the last acknowledged write, not the one with the larger wall-clock reading."""

from __future__ import annotations

import glob
from typing import Any

import pytest
from conftest import make_s3

# The library, not the faketime command: the command forks, and stopping it would orphan the node.
LIBFAKETIME = next(iter(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")), None)
pytestmark = pytest.mark.skipif(LIBFAKETIME is None, reason="needs libfaketime (apt-get install faketime)")

LAG = "-90s"  # behind, but within the 300 s the internal API accepts


def test_overwrites_through_a_lagging_node_win(cluster: Any) -> None:
    lagging = 1
    cluster.kill(lagging)
    # The clock the node reads lags; its event loop's monotonic clock is left alone.
    assert LIBFAKETIME is not None
    cluster.restart(lagging, env={"LD_PRELOAD": LIBFAKETIME, "FAKETIME": LAG, "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
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
