"""The operator's commands (`edgestore status/locate/repair/scrub`) run against a test
cluster, as a person at the site would run them, and a cluster whose background passes
run on a schedule the test picks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from clusterlib import LocalCluster

CLI_TIMEOUT_S = 120


@contextmanager
def cluster_with_repair_interval(data: Path, interval_s: float) -> Iterator[LocalCluster]:
    local = LocalCluster(data, extra=["--repair-interval", str(interval_s)])
    try:
        local.start()
        yield local
    finally:
        local.stop()


def cli(cluster: LocalCluster, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "edgestore", *args, "--cluster", str(cluster.data / "cluster.json")],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    return done.stdout


def status(cluster: LocalCluster) -> dict[str, Any]:
    return dict(json.loads(cli(cluster, "status", "--json")))


def locate(cluster: LocalCluster, bucket: str, key: str) -> dict[str, Any]:
    return dict(json.loads(cli(cluster, "locate", bucket, key, "--json")))


def summary(text: str) -> dict[str, int]:
    """The counters of a `scrub --now` / `repair --now` summary line."""
    counters = text.strip().splitlines()[-1].split(": ", 1)[1]
    return {name.rsplit(" ", 1)[0]: int(name.rsplit(" ", 1)[1]) for name in counters.split(", ")}


def missing_copies(cluster: LocalCluster, bucket: str, keys: list[str]) -> list[str]:
    """Every replica of each object's record and of each of its blocks that is not present,
    intact and current, as "key: where" lines (empty when all are fully replicated)."""
    problems = []
    for key in keys:
        where = locate(cluster, bucket, key)
        copies = [("record", r) for r in where["replicas"]]
        copies += [(f"block {b['index']}", r) for b in where["blocks"] for r in b["replicas"]]
        for what, copy in copies:
            if not (copy["present"] and copy["intact"]) or copy.get("current") is False:
                problems.append(f"{key}: {what} on {copy['node']} {copy['device']}")
    return problems


def backlog(cluster: LocalCluster) -> int:
    """Out-of-sync replica pairs plus handoff partitions, as the last pass of each node saw them."""
    nodes = status(cluster)["nodes"]
    assert all(n.get("up") for n in nodes), [n.get("error") for n in nodes if not n.get("up")]
    return sum(n["repair"]["out_of_sync"] + n["repair"]["handoff_partitions"] for n in nodes)


@dataclass
class Convergence:
    """The figures of `repair --now` run until the cluster is fully replicated."""
    passes: int
    seconds: float
    bytes_sent: int
    records_sent: int
    blocks_sent: int
    partitions_dropped: int

    def __str__(self) -> str:
        return (f"full replication after {self.passes} repair passes in {self.seconds:.1f} s: "
                f"{self.bytes_sent} bytes, {self.records_sent} records, {self.blocks_sent} blocks moved, "
                f"{self.partitions_dropped} handoff partitions dropped")


def repair_until_converged(cluster: LocalCluster, max_passes: int = 5) -> Convergence:
    """`repair --now` until a pass finds every replica pair in sync and no handoff partition
    left (each pass reports what it found before pushing, so the last one moves nothing)."""
    started = time.monotonic()
    totals = Convergence(0, 0.0, 0, 0, 0, 0)
    for _ in range(max_passes):
        text = cli(cluster, "repair", "--now")
        assert "DOWN" not in text, text
        counts = summary(text)
        totals.passes += 1
        totals.bytes_sent += counts["bytes sent"]
        totals.records_sent += counts["records sent"]
        totals.blocks_sent += counts["blocks sent"]
        totals.partitions_dropped += counts["partitions dropped"]
        if counts["out of sync"] == 0 and backlog(cluster) == 0:
            totals.seconds = time.monotonic() - started
            return totals
    raise AssertionError(f"still out of sync after {max_passes} repair passes: {text.strip()}")
