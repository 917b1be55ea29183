"""`edgestore bench` against a real cluster, through S3 and through Swift: every scenario
runs, reports every phase with its counters, and a store that cannot be reached or
refuses the credentials is a clear error, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from clusterlib import LocalCluster

TIMEOUT_S = 300


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgestore", "bench", *args], capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def phases(done: subprocess.CompletedProcess[str]) -> dict[tuple[str, str], dict[str, Any]]:
    assert done.returncode == 0, done.stderr + done.stdout
    return {(p["scenario"], p["phase"]): p for p in json.loads(done.stdout)["phases"]}


SMALL = ["--scenario", "small", "--scenario", "large", "--scenario", "mixed", "--scenario", "list",
         "--count", "24", "--list-objects", "150", "--json", "--concurrency", "4"]


def check(results: dict[tuple[str, str], dict[str, Any]], list_repeats: int = 5) -> None:
    for phase in ("PUT", "GET", "HEAD", "DELETE"):
        row = results[("small", phase)]
        assert row["ops"] == 24 and row["errors"] == 0 and row["ops_per_s"] > 0 and row["p99_ms"] >= row["p50_ms"]
    assert results[("large", "PUT")]["mib_per_s"] > 0 and results[("large", "GET")]["ops"] == 24
    mixed = {op: results[("mixed", op)]["ops"] for op in ("GET", "HEAD", "PUT", "DELETE")}
    assert sum(mixed.values()) == results[("mixed", "all")]["ops"] == 24
    assert results[("list", "fill")]["ops"] == 150
    assert results[("list", "full")]["ops"] == list_repeats
    assert results[("list", "delimiter")]["ops"] == list_repeats * 10


def test_bench_through_s3(cluster: LocalCluster) -> None:
    access, secret = cluster.credentials
    check(phases(bench("--s3", cluster.endpoint, "--access-key", access, "--secret-key", secret,
                       "--size", "300000", *SMALL)))


def test_bench_through_swift(cluster: LocalCluster) -> None:
    check(phases(bench("--swift", cluster.endpoint + "/auth/v1.0", "--user", "default:admin", "--key",
                       cluster.credentials[1], "--size", "300000", "--list-repeats", "2", *SMALL)), list_repeats=2)


def test_bench_prints_a_table_by_default(cluster: LocalCluster) -> None:
    done = bench("--cluster", str(cluster.data / "cluster.json"), "--scenario", "small", "--count", "10")
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[1].split()
    assert header[:3] == ["scenario", "phase", "ops"] and "p99" in header
    assert len([line for line in done.stdout.splitlines() if line.startswith("small")]) == 4


def test_bench_refusals_are_clear_errors(cluster: LocalCluster) -> None:
    wrong_key = bench("--swift", cluster.endpoint + "/auth/v1.0", "--user", "default:admin", "--key", "nope",
                      "--scenario", "small", "--count", "1")
    assert wrong_key.returncode == 2 and "401" in wrong_key.stderr and "Traceback" not in wrong_key.stderr
    no_keys = bench("--s3", cluster.endpoint, "--scenario", "small")
    assert no_keys.returncode == 2 and "--access-key" in no_keys.stderr
    no_repeats = bench("--cluster", str(cluster.data / "cluster.json"), "--scenario", "list", "--list-repeats", "0")
    assert no_repeats.returncode == 2 and "--list-repeats" in no_repeats.stderr
