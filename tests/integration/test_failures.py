"""Nodes die (SIGKILL) and come back: every acknowledged write stays readable, and every
operation keeps working while one node of a 4-node, 3-replica cluster is down."""

from __future__ import annotations

import os
import threading
from typing import Any

from acked import Model
from conftest import make_s3


def client_for(cluster: Any, index: int) -> Any:
    return make_s3(cluster.url(index), *cluster.credentials)


def test_every_operation_works_with_any_one_node_killed(cluster: Any) -> None:
    model = Model()
    s3 = client_for(cluster, 0)
    bucket = "failover"
    s3.create_bucket(Bucket=bucket)
    for i in range(6):
        model.put(s3, bucket, f"before-{i}", os.urandom(3000 if i % 2 else 1_500_000))
    for dead in range(cluster.nodes):
        cluster.kill(dead)
        try:
            live = client_for(cluster, (dead + 1) % cluster.nodes)
            for i in range(4):
                model.put(live, bucket, f"while-{dead}-{i}", os.urandom(2000 if i % 2 else 1_200_000))
            model.put(live, bucket, "before-0", b"overwritten while node %d was down" % dead)
            model.delete(live, bucket, f"before-{dead + 1}")
            live.head_bucket(Bucket=bucket)
            live.create_bucket(Bucket=f"made-while-{dead}-down")
            model.check(live, bucket)
        finally:
            cluster.restart(dead)
        # The node that came back serves everything, including what it missed.
        model.check(client_for(cluster, dead), bucket)
    for index in range(cluster.nodes):
        model.check(client_for(cluster, index), bucket)


def test_acknowledged_writes_survive_a_kill_during_concurrent_writes(cluster: Any) -> None:
    model = Model()
    bucket = "concurrent"
    client_for(cluster, 1).create_bucket(Bucket=bucket)
    victim = 0
    errors: list[Exception] = []

    def writer(worker: int) -> None:
        s3 = client_for(cluster, 1 + worker % (cluster.nodes - 1))
        for i in range(25):
            try:
                model.put(s3, bucket, f"w{worker}-{i}", os.urandom(1000 + 50_000 * (i % 3)))
            except Exception as exc:  # unacknowledged: allowed to be lost, must not corrupt
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    while sum(1 for v in model.objects.values() if v) < 20 and any(t.is_alive() for t in threads):
        threading.Event().wait(0.05)
    cluster.kill(victim)
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    cluster.restart(victim)
    assert len(model.objects) >= 90, f"too many writes failed with one node down: {errors[:3]}"
    for index in range(cluster.nodes):
        model.check(client_for(cluster, index), bucket)


def test_whole_cluster_power_cut(cluster: Any) -> None:
    model = Model()
    s3 = client_for(cluster, 2)
    bucket = "powercut"
    s3.create_bucket(Bucket=bucket)
    for i in range(20):
        model.put(s3, bucket, f"p{i}", os.urandom(500 if i % 2 else 1_100_000))
    for index in range(cluster.nodes):
        cluster.kill(index)
    for index in range(cluster.nodes):
        cluster.restart(index)
    model.check(client_for(cluster, 3), bucket)
