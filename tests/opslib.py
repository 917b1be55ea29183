"""The operator's commands (`edgestore status/locate/repair/scrub`) run against a test
cluster, as a person at the site would run them, and a cluster whose background passes
run on a schedule the test picks."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
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
    """Every replica of each object's record and of each of its blocks that is not present
    and intact, as "key: where" lines (empty when all are fully replicated)."""
    problems = []
    for key in keys:
        where = locate(cluster, bucket, key)
        copies = [("record", r) for r in where["replicas"]]
        copies += [(f"block {b['index']}", r) for b in where["blocks"] for r in b["replicas"]]
        for what, copy in copies:
            if not (copy["present"] and copy["intact"]) or copy.get("current") is False:
                problems.append(f"{key}: {what} on {copy['node']} {copy['device']}")
    return problems
