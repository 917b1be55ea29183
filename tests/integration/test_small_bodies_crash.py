"""Every node SIGKILLed at once while clients write small objects (bodies in segment files,
synced before the commit of the rows that name them): after a restart, before any repair
pass, every acknowledged object reads back with its bytes and has intact copies on a
quorum of replicas, and a write arriving after the crash lands beside the dead tail."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from acked import Model
from clusterlib import LocalCluster
from conftest import make_s3
from opslib import cluster_with_repair_interval, locate

CLIENTS = 6
ACKED_BEFORE_KILL = 150    # acknowledged PUTs seen before the nodes are killed
SAMPLE_KEYS = 12           # keys whose every replica `locate` checks


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    # No repair pass of its own: what survives is what each replica made durable.
    with cluster_with_repair_interval(tmp_path_factory.mktemp("crash"), 3600) as local:
        yield local


def writer(cluster: LocalCluster, index: int, bucket: str, model: Model, stop: threading.Event) -> None:
    s3 = make_s3(cluster.url(index % cluster.nodes), *cluster.credentials, attempts=1, connect_timeout=3,
                 read_timeout=20)
    n = 0
    while not stop.is_set():
        body = f"c{index} n{n}\n".encode() + os.urandom(512 + (n * 997) % 15_000)
        try:
            model.put(s3, bucket, f"c{index}/{n:05d}", body)
        except Exception:   # killed under this PUT: not acknowledged, not in the model
            return
        n += 1


def quorum_intact(where: dict[str, Any]) -> bool:
    return sum(1 for r in where["replicas"] if r["present"] and r["intact"]) >= 2


@pytest.mark.timeout(300)
def test_acknowledged_small_objects_survive_a_sigkill_of_every_node(cluster: LocalCluster) -> None:
    bucket = "crash-small"
    make_s3(cluster.endpoint, *cluster.credentials).create_bucket(Bucket=bucket)
    model, stop = Model(), threading.Event()
    threads = [threading.Thread(target=writer, args=(cluster, i, bucket, model, stop)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        while len(model.objects) < ACKED_BEFORE_KILL and any(t.is_alive() for t in threads):
            time.sleep(0.05)
        cluster.kill_all()   # mid-write: the clients are still sending
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    acked = dict(model.objects)
    assert len(acked) >= ACKED_BEFORE_KILL
    for index in range(cluster.nodes):
        cluster.restart(index)
    s3 = make_s3(cluster.endpoint, *cluster.credentials)
    model.check(s3, bucket)
    keys = sorted(acked)
    for key in keys[:: max(1, len(keys) // SAMPLE_KEYS)]:
        assert quorum_intact(locate(cluster, bucket, key)), key
    segments = list(Path(cluster.node(0)["data_dir"]).parent.glob("*/d1/meta.db.segments/*.seg"))
    assert segments, "the small bodies are not in segment files"
    model.put(s3, bucket, "after-the-crash", os.urandom(3000))
    model.check(s3, bucket)
