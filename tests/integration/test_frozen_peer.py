"""A peer that hangs (SIGSTOP: what a Pi stuck on a dying SD card looks like from outside)
must cost a few requests their grace, not every request: a read asks the rest of the
replica set once its quorum is late (read_hedge_s), and a peer that made three requests
in a row give up on it is tried last, as one that refuses connections is. Every
acknowledged write reads back, while it hangs and once it is back."""

from __future__ import annotations

import os
import signal
import time
from typing import Iterator

import pytest
from clusterlib import LocalCluster
from conftest import make_s3

FROZEN = 2
# The endpoint (node 0) waits this long for a late replica, and hedges reads after it:
# long enough that a request which waited for the frozen peer stands apart from one that
# did not, however loaded the test machine is. A suppressed peer stays so for the test.
TIMEOUTS = {"post_quorum_s": 2.0, "read_hedge_s": 2.0, "list_hedge_s": 2.0, "peer_suppress_s": 120.0}
WAITED_S = 1.9
OBJECTS = 40
# Requests that waited out a grace or a hedge: the three hangs that suppress the peer, and
# a few more in flight around them. Without the suppression, most writes would wait (the
# frozen node holds a replica of three partitions in four).
MOST_WAITED = 8
CLIENT_TIMEOUT_S = 15   # a read stuck on the frozen peer would wait request_s (30 s)


@pytest.fixture()
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("frozen")).start()
    try:
        local.kill(0, signal.SIGTERM)
        config = next(arg for arg in reversed(local.node(0)["command"]) if arg.endswith(".toml"))
        with open(config, "a") as f:
            f.write("\n[timeouts]\n" + "".join(f"{key} = {value}\n" for key, value in TIMEOUTS.items()))
        local.restart(0)
        yield local
    finally:
        try:
            os.kill(local.pid(FROZEN), signal.SIGCONT)
        except ProcessLookupError:
            pass
        local.stop()


def test_a_frozen_peer_costs_a_few_requests_their_grace_and_loses_nothing(cluster: LocalCluster) -> None:
    s3 = make_s3(cluster.endpoint, *cluster.credentials, attempts=1, read_timeout=CLIENT_TIMEOUT_S)
    s3.create_bucket(Bucket="frozen")
    bodies = {f"k{i:03d}": f"object {i} ".encode() * 400 for i in range(OBJECTS)}
    os.kill(cluster.pid(FROZEN), signal.SIGSTOP)   # (cluster.kill would wait for it to die)
    waited: list[float] = []
    for key, body in bodies.items():
        started = time.monotonic()
        s3.put_object(Bucket="frozen", Key=key, Body=body)
        waited.append(time.monotonic() - started)
    for key, body in bodies.items():
        started = time.monotonic()
        assert s3.get_object(Bucket="frozen", Key=key)["Body"].read() == body
        waited.append(time.monotonic() - started)
    slow = sum(1 for seconds in waited if seconds >= WAITED_S)
    assert slow <= MOST_WAITED, f"{slow} of {len(waited)} requests waited for the frozen peer"

    os.kill(cluster.pid(FROZEN), signal.SIGCONT)
    elsewhere = make_s3(cluster.url(1), *cluster.credentials)
    for key, body in bodies.items():
        assert elsewhere.get_object(Bucket="frozen", Key=key)["Body"].read() == body
