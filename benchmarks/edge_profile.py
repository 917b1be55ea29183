#!/usr/bin/env python3
"""An approximation of a Raspberry Pi 3 cluster on this machine: four edgestore nodes,
each in its own network namespace behind a 100 Mbit/s link (tc), with a fraction of a
core (cgroup CPU quota) and a memory limit. Root only (namespaces, tc, cgroups).

Reports large-object throughput as a fraction of what the links allow once the replica
fan-out is counted, small-object ops/s, and the bytes the nodes wrote to disk per byte
stored (write amplification, from /proc/<pid>/io, the SQLite WALs checkpointed before and
after so that the checkpoint's writes count) — the figure that decides an SD card's life.

    sudo .venv/bin/python benchmarks/edge_profile.py [--cpu 0.5] [--memory-mib 256] [--mbit 100]

The client reaches node 1 on the same link its peers use (a Pi has one network port), so
a PUT's bytes in from the client and out to the other replicas share that link's budget.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from netns import NetnsCluster, netns_unavailable  # noqa: E402
from quick import checkpoint_all  # noqa: E402

from edgestore.bench.runner import PhaseResult, body, run_phase  # noqa: E402
from edgestore.bench.scenarios import SCENARIOS, Settings  # noqa: E402
from edgestore.bench.targets import S3Target  # noqa: E402

MIB = 1024 * 1024


class CgroupLimits:
    """A CPU quota and a memory limit per node, with cgroup v2 or v1 (whichever is mounted)."""

    def __init__(self, cpu_fraction: float, memory_bytes: int) -> None:
        self.cpu_fraction, self.memory_bytes = cpu_fraction, memory_bytes
        self.v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        self.made: list[Path] = []

    def apply(self, name: str, pid: int) -> None:
        period = 100_000
        quota = int(period * self.cpu_fraction)
        if self.v2:
            group = Path("/sys/fs/cgroup") / name
            group.mkdir(exist_ok=True)
            self.made.append(group)
            (group / "cpu.max").write_text(f"{quota} {period}")
            (group / "memory.max").write_text(str(self.memory_bytes))
            (group / "cgroup.procs").write_text(str(pid))
            return
        for controller, settings in (("cpu", {"cpu.cfs_period_us": period, "cpu.cfs_quota_us": quota}),
                                     ("memory", {"memory.limit_in_bytes": self.memory_bytes})):
            group = Path("/sys/fs/cgroup") / controller / name
            group.mkdir(exist_ok=True)
            self.made.append(group)
            for key, value in settings.items():
                (group / key).write_text(str(value))
            (group / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        for group in reversed(self.made):
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def written_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                total += int(line.split()[1])
    return total


def settle_writes(pids: list[int], quiet_s: float = 2.0, most_s: float = 60.0) -> None:
    """Wait until the nodes have written nothing for `quiet_s` (at most `most_s`): a PUT is
    acknowledged by a quorum, and over a 100 Mbit/s link the last replicas of 4 MiB blocks
    land seconds later; a fixed pause counted some of them and not others."""
    deadline = time.monotonic() + most_s
    last, quiet_since = written_bytes(pids), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_s:
        time.sleep(0.5)
        now = written_bytes(pids)
        if now != last:
            last, quiet_since = now, time.monotonic()


async def run(target: S3Target, scenario: str, settings: Settings) -> list[PhaseResult]:
    await target.open(settings.concurrency)
    try:
        await target.create_bucket(settings.bucket)
        return await SCENARIOS[scenario](target, settings)
    finally:
        await target.close()


async def put_only(target: S3Target, bucket: str, count: int, size: int, concurrency: int) -> PhaseResult:
    """Just the writes, for the bytes-written-per-byte-stored figure."""
    await target.open(concurrency)
    try:
        await target.create_bucket(bucket)

        async def put(i: int) -> int:
            await target.put(bucket, f"wa/{i:08d}", body(size, f"wa{bucket}{i}"), size)
            return size
        return await run_phase("write-amplification", f"PUT {size}", put, concurrency, count=count, progress=False)
    finally:
        await target.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", type=float, default=0.5, help="cores per node (default 0.5)")
    parser.add_argument("--memory-mib", type=int, default=256, help="memory limit per node (default 256)")
    parser.add_argument("--mbit", type=int, default=100, help="link speed per node (default 100)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--large-count", type=int, default=4)
    parser.add_argument("--small-count", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reason = netns_unavailable()
    if reason:
        sys.exit(f"edge profile: {reason}")

    data = Path(tempfile.mkdtemp(prefix="edgestore-edge-"))
    cluster = NetnsCluster(data)
    limits = CgroupLimits(args.cpu, args.memory_mib * MIB)
    report: dict[str, object] = {}
    try:
        cluster.start()
        for index in range(cluster.nodes):   # each node's one link, at args.mbit each way
            cluster.shape(index, args.mbit)
        pids = [cluster.procs[i].pid for i in range(cluster.nodes)]
        for index, pid in enumerate(pids):
            limits.apply(f"edgestore-edge-{cluster.tag}-{index}", pid)
        # The client talks to node 1 over its one (shaped) link.
        url = f"http://{cluster.cluster_ip(0)}:8080"
        access, secret = cluster.credentials
        base = Settings(bucket="edge", concurrency=args.concurrency, progress=False)
        link = args.mbit * 1_000_000 / 8 / MIB               # MiB/s each way
        replicas = cluster.replicas
        # A PUT through node 1: in from the client once, out to each replica not on node 1
        # (node 1 holds a given block with probability replicas/nodes). A GET: in from a
        # replica unless local, out to the client once.
        out_per_byte = replicas - replicas / cluster.nodes
        put_limit = min(link, link / out_per_byte)
        get_limit = link
        results = {}
        for scenario, extra in (("large", {"count": args.large_count}), ("small", {"count": args.small_count})):
            phases = asyncio.run(run(S3Target(url, access, secret), scenario,
                                     replace(base, bucket=f"edge-{scenario}", **extra)))
            results[scenario] = {p.phase: p.row() for p in phases}
        large, small = results["large"], results["small"]
        amplification = {}
        for size, count in ((4096, args.small_count), (64 * MIB, args.large_count)):
            checkpoint_all(cluster.info)
            before = written_bytes(pids)
            done = asyncio.run(put_only(S3Target(url, access, secret), f"edge-wa-{size}", count, size,
                                        args.concurrency))
            settle_writes(pids)
            # Pages in the WAL are written again into the database at checkpoint: count that too.
            at_checkpoint = checkpoint_all(cluster.info)
            amplification[size] = (written_bytes(pids) - before + at_checkpoint) / max(done.ops * size, 1)
        report = {
            "machine": f"{platform.node()}, {os.cpu_count()} cores; per node {args.cpu} core, "
                       f"{args.memory_mib} MiB, {args.mbit} Mbit/s",
            "large_put_mib_s": large["PUT"]["mib_per_s"], "large_put_limit_mib_s": round(put_limit, 2),
            "large_put_fraction_of_limit": round(float(str(large["PUT"]["mib_per_s"])) / put_limit, 2),
            "large_get_mib_s": large["GET"]["mib_per_s"], "large_get_limit_mib_s": round(get_limit, 2),
            "large_get_fraction_of_limit": round(float(str(large["GET"]["mib_per_s"])) / get_limit, 2),
            "small_ops_s": {phase: row["ops_per_s"] for phase, row in small.items()},
            # Bytes the nodes wrote to disk (all of them, all replicas) per byte PUT.
            "write_amplification_4k": round(amplification[4096], 2),
            "write_amplification_4k_per_replica": round(amplification[4096] / replicas, 2),
            "write_amplification_64m": round(amplification[64 * MIB], 2),
            "write_amplification_64m_per_replica": round(amplification[64 * MIB] / replicas, 2),
            "errors": sum(int(str(row["errors"])) for rows in results.values() for row in rows.values()),
        }
    finally:
        cluster.stop()
        limits.remove()
        shutil.rmtree(data, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:40} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
