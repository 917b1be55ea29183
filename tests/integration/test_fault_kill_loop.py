"""Nodes are SIGKILLed and restarted again and again while clients keep writing,
overwriting, deleting and reading: no acknowledged write is lost, no read returns a version
older than the newest acknowledged one, deletes stay deleted, and `repair --now` then brings
the cluster back to full replication."""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from acked import Model
from botocore.exceptions import ClientError
from clusterlib import LocalCluster
from conftest import make_s3
from opslib import missing_copies, repair_until_converged

ROUNDS = 6             # kills, one node at a time, every node at least once
DOWN_S = 2.0           # how long a killed node stays down, under load
UP_S = 2.0             # how long all nodes are up between kills
CLIENTS = 3            # threads, each against its own node and with its own keys
KEYS_PER_CLIENT = 10
OP_DEADLINE_S = 30.0   # one operation may be retried (on another node) for this long
SAMPLE_KEYS = 8        # keys whose every replica `locate` checks at the end


@dataclass
class Tally:
    puts: int = 0
    deletes: int = 0
    reads: int = 0
    retried: int = 0
    bytes_written: int = 0
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, **deltas: int) -> None:
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)


class Client:
    """One load thread: owns its keys (so the newest acknowledged version of each is known
    exactly), writes through its own node and reads back through the next one, moving on to
    another node while the one it uses is down."""

    def __init__(self, cluster: LocalCluster, index: int, bucket: str, model: Model, tally: Tally,
                 stop: threading.Event) -> None:
        self.s3 = [make_s3(cluster.url(i), *cluster.credentials, connect_timeout=3, read_timeout=20)
                   for i in range(cluster.nodes)]
        self.home = index % cluster.nodes
        self.index, self.bucket, self.model, self.tally, self.stop = index, bucket, model, tally, stop
        self.keys = [f"c{index}-k{n}" for n in range(KEYS_PER_CLIENT)]
        self.versions = dict.fromkeys(self.keys, 0)
        self.rng = random.Random(index)

    def retrying(self, first: int, what: str, op: Any) -> Any:
        """Run op(s3) until it is acknowledged, from node `first` on, each failure on the next
        node. An unacknowledged attempt may have landed; the retry writes the same thing."""
        deadline = time.monotonic() + OP_DEADLINE_S
        node = first
        while True:
            try:
                return op(self.s3[node])
            except ClientError as exc:
                if exc.response["ResponseMetadata"]["HTTPStatusCode"] < 500:
                    raise
                last: Exception = exc
            except Exception as exc:   # connection refused or reset: the node was killed
                last = exc
            self.tally.count(retried=1)
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not acknowledged within {OP_DEADLINE_S} s: {last}")
            node = (node + 1) % len(self.s3)
            time.sleep(0.2)

    def body(self, key: str) -> bytes:
        self.versions[key] += 1
        # Mostly inline objects, some of two blocks; the header names the version for messages.
        size = 1_100_000 if self.rng.random() < 0.15 else self.rng.randint(50, 12_000)
        return f"{key} v{self.versions[key]}\n".encode() + os.urandom(size)

    def put(self, key: str) -> None:
        body = self.body(key)
        self.retrying(self.home, f"PUT {key}", lambda s3: self.model.put(s3, self.bucket, key, body))
        self.tally.count(puts=1, bytes_written=len(body))

    def delete(self, key: str) -> None:
        self.versions[key] += 1
        self.retrying(self.home, f"DELETE {key}", lambda s3: self.model.delete(s3, self.bucket, key))
        self.tally.count(deletes=1)

    def read_back(self, key: str) -> None:
        """Read through another node than the writer's: it must see the newest acknowledged
        version (this thread is the key's only writer, so that version is exact)."""
        expected = self.model.objects.get(key)

        def get(s3: Any) -> bytes | None:
            try:
                return bytes(s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            except ClientError as exc:
                if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                    return None
                raise
        got = self.retrying((self.home + 1) % len(self.s3), f"GET {key}", get)
        self.tally.count(reads=1)
        if got != expected:
            seen = got.split(b"\n", 1)[0].decode() if got else "404"
            wanted = expected.split(b"\n", 1)[0].decode() if expected else "404 (deleted)"
            with self.tally.lock:
                self.tally.violations.append(f"GET {key}: got {seen}, acknowledged {wanted}")

    def run(self) -> None:
        try:
            for key in self.keys:
                self.put(key)
            while not self.stop.is_set():
                key = self.rng.choice(self.keys)
                roll = self.rng.random()
                if roll < 0.5:
                    self.put(key)
                elif roll < 0.6:
                    self.delete(key)
                self.read_back(key)
        except Exception as exc:  # reported by the test, which fails on any
            with self.tally.lock:
                self.tally.violations.append(f"client {self.index}: {exc!r}")


@pytest.mark.timeout(300)
def test_acknowledged_writes_survive_repeated_kills_under_load(cluster: LocalCluster) -> None:
    bucket = "kill-loop"
    make_s3(cluster.url(0), *cluster.credentials).create_bucket(Bucket=bucket)
    model, tally, stop = Model(), Tally(), threading.Event()
    clients = [Client(cluster, i, bucket, model, tally, stop) for i in range(CLIENTS)]
    threads = [threading.Thread(target=c.run, name=f"load-{c.index}") for c in clients]
    for t in threads:
        t.start()
    started = time.monotonic()
    killed = []
    try:
        time.sleep(UP_S)
        for round_ in range(ROUNDS):
            victim = (round_ * 3 + 1) % cluster.nodes   # 1, 0, 3, 2, 1, 0: each node, a client's own too
            cluster.kill(victim)
            killed.append(victim)
            time.sleep(DOWN_S)
            cluster.restart(victim)
            time.sleep(UP_S)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=OP_DEADLINE_S * 3)
    load_s = time.monotonic() - started
    assert not any(t.is_alive() for t in threads), "a load thread hung"
    assert tally.violations == [], tally.violations[:10]
    assert tally.puts >= CLIENTS * KEYS_PER_CLIENT and tally.reads > 0 and tally.deletes > 0, tally
    assert set(killed) == set(range(cluster.nodes))

    converged = repair_until_converged(cluster)
    live = sorted(k for k, v in model.objects.items() if v is not None)
    sample = random.Random(1).sample(live, min(SAMPLE_KEYS, len(live)))
    assert missing_copies(cluster, bucket, sample) == []
    for index in range(cluster.nodes):
        model.check(make_s3(cluster.url(index), *cluster.credentials), bucket)
    print(f"\nkill loop: {ROUNDS} SIGKILLs of nodes {killed} over {load_s:.0f} s of load; "
          f"{tally.puts} PUTs ({tally.bytes_written} bytes), {tally.deletes} DELETEs, {tally.reads} GETs "
          f"acknowledged, {tally.retried} attempts retried on another node; {len(live)} live objects; {converged}")
