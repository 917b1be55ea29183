#!/usr/bin/env python3
"""A/B of large-object PUT cost between versions of the code: node CPU-seconds per GiB
stored, and MiB/s, side by side on one machine.

    .venv/bin/python benchmarks/put_cpu_ab.py --code old=/tmp/old-tree --code new=. \\
        --port 19100 --data /tmp/put-ab --rounds 3

A code may carry [store] settings for its nodes, to compare configurations of one tree:
`--code big=.,block_size_bytes=4194304,blocks_in_flight_total=4`.

Each `--code LABEL=TREE` (a checkout: TREE/edgestore, TREE/ring) gets its own 4-node
`edgestore up` (benchmarks/listing_ab.py starts them). Per round, alternating which cluster
goes first, each cluster takes `edgestore bench`'s large PUT phase (the same client, bodies
and concurrency) through node1, by the Swift API and by S3; node CPU is utime + stime of
the cluster's processes from /proc before and after the phase, divided by the GiB of
objects stored (each stored three times); the largest node RSS is sampled meanwhile. With
`--get`, a GET phase of the same objects follows (MiB/s, largest node RSS). After each phase the objects are deleted and
garbage-collected at once, so the data on disk stays small; a cluster is measured again
only `--gc-pause` seconds after its collection (ext4 without a journal, as on this VM, skips
inodes freed in the last minute when it allocates one, and a block file is a new inode: right
after thousands of deletions every new file costs a scan). Reported: medians per (code,
api) of CPU-s/GiB for all nodes and for the coordinating node alone, MiB/s, and the
ratios to the first code. The machine is shared: compare the ratios, not the absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgestore.bench.runner import body, run_phase  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from listing_ab import Cluster, settle, start, stop  # noqa: E402
from side_by_side import PeakSampler, System, cpu_seconds, process_tree  # noqa: E402

GIB = 1024 ** 3
MIB = 1024 ** 2


def start_with(label: str, spec: str, data: Path, port: int) -> Cluster:
    """A cluster of TREE[,KEY=VALUE...]: `edgestore up` writes the node configs on its first
    start and reuses them, so settings go in between a first start and a second."""
    tree, *settings = spec.split(",")
    cluster = start(label, Path(tree).resolve(), data, port)
    if settings:
        stop(cluster)
        for conf in sorted((data / "conf").glob("node*.toml")):
            with conf.open("a") as f:
                f.write("\n[store]\n" + "".join(f"{k} = {v}\n" for k, v in (s.split("=", 1) for s in settings)))
        cluster = start(label, Path(tree).resolve(), data, port)
    return cluster


def node_memory(cluster: Cluster) -> PeakSampler:
    """Samples the node processes' memory (not `edgestore up`'s own)."""
    pids = [int(node["pid"]) for node in cluster.info["nodes"]]
    return PeakSampler(System(cluster.label, lambda: cluster.target("swift", 0), lambda: cluster.target("s3", 0),
                              lambda: pids))


def coordinator_pids(cluster: Cluster) -> list[int]:
    """node1's process (the endpoint every request goes to)."""
    return [int(cluster.info["nodes"][0]["pid"])]


async def put_phase(cluster: Cluster, api: str, bucket: str, count: int, size: int,
                    concurrency: int, get: bool) -> tuple[float, float, float, int, float, float, float]:
    """(node CPU-s, coordinator CPU-s, seconds, errors, largest node RSS MiB, GET MiB/s,
    largest node RSS MiB under GET) of `count` PUTs (and GETs), then delete them."""
    target = cluster.target(api, 0)
    await target.open(concurrency)
    try:
        await target.create_bucket(bucket)
        pids = process_tree([cluster.up.pid])
        cpu, coord, started = cpu_seconds(pids), cpu_seconds(coordinator_pids(cluster)), time.monotonic()

        async def put(i: int) -> int:
            await target.put(bucket, f"large/{i:08d}", body(size, f"large{i}"), size)
            return size
        with node_memory(cluster) as put_memory:
            result = await run_phase("large", "PUT", put, concurrency, count=count, progress=False)
        elapsed = time.monotonic() - started
        cpu, coord = cpu_seconds(pids) - cpu, cpu_seconds(coordinator_pids(cluster)) - coord
        get_rate = get_rss = 0.0
        if get:
            async def fetch(i: int) -> int:
                return await target.get(bucket, f"large/{i:08d}")
            with node_memory(cluster) as get_memory:
                got = await run_phase("large", "GET", fetch, concurrency, count=count, progress=False)
            get_rate = got.bytes / MIB / got.seconds
            get_rss = get_memory.peak.get("max_process_rss_mib", 0.0)

        async def delete(i: int) -> int:
            await target.delete(bucket, f"large/{i:08d}")
            return 0
        await run_phase("large", "cleanup", delete, concurrency, count=count, progress=False)
        return (cpu, coord, elapsed, result.errors, put_memory.peak.get("max_process_rss_mib", 0.0),
                get_rate, get_rss)
    finally:
        await target.close()


def collect(cluster: Cluster) -> None:
    subprocess.run([sys.executable, "-m", "edgestore", "gc", "--now", "--grace", "0",
                    "--cluster", str(cluster.data / "cluster.json")], check=True, capture_output=True,
                   timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", action="append", required=True, metavar="LABEL=TREE[,KEY=VALUE...]")
    parser.add_argument("--port", type=int, default=19100)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=16, help="PUTs per measurement")
    parser.add_argument("--size", type=int, default=64 * MIB)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--apis", default="swift,s3")
    parser.add_argument("--get", action="store_true", help="also GET the objects after each PUT phase")
    parser.add_argument("--gc-pause", type=float, default=75.0, help="seconds between a collection and the next PUTs")
    args = parser.parse_args()
    codes = [(c.split("=", 1)[0], c.split("=", 1)[1]) for c in args.code]
    clusters: list[Cluster] = []
    samples: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    gib = args.count * args.size / GIB
    collected: dict[str, float] = {}  # when each cluster's last collection ended
    try:
        for i, (label, spec) in enumerate(codes):
            clusters.append(start_with(label, spec, args.data / label, args.port + 10 * i))
        settle(clusters)
        for rnd in range(args.rounds):
            order = clusters if rnd % 2 == 0 else clusters[::-1]
            for api in args.apis.split(","):
                for cluster in order:
                    time.sleep(max(0.0, collected.get(cluster.label, 0.0) + args.gc_pause - time.monotonic()))
                    load = os.getloadavg()[0]
                    cpu, coord, elapsed, errors, rss, get_rate, get_rss = asyncio.run(put_phase(
                        cluster, api, f"putab-{api}-{rnd}", args.count, args.size, args.concurrency, args.get))
                    collect(cluster)
                    collected[cluster.label] = time.monotonic()
                    rate = args.count * args.size / MIB / elapsed
                    samples.setdefault((cluster.label, api), []).append(
                        (cpu / gib, coord / gib, rate, rss, get_rate, get_rss))
                    print(f"round {rnd} {cluster.label} {api}: {cpu / gib:.2f} node CPU-s/GiB "
                          f"(node1 {coord / gib:.2f}), {rate:.1f} MiB/s, node RSS {rss:.1f} MiB, {errors} errors"
                          + (f"; GET {get_rate:.1f} MiB/s, node RSS {get_rss:.1f} MiB" if args.get else "")
                          + f"; load {load:.1f}", flush=True)
                    settle(clusters)
    finally:
        for cluster in clusters:
            stop(cluster)
    base = codes[0][0]
    print(f"\nmedians ({args.rounds} rounds, {args.count} x {args.size // MIB} MiB); ratios to {base}")
    print("| code | api | node CPU-s/GiB | node1 CPU-s/GiB | PUT MiB/s | CPU ratio | rate ratio "
          "| largest node RSS, PUT | GET MiB/s | largest node RSS, GET |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (label, api), values in sorted(samples.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cpu, coord, rate, rss, get_rate, get_rss = (statistics.median(v[i] for v in values) for i in range(6))
        ref = samples.get((base, api), values)
        print(f"| {label} | {api} | {cpu:.2f} | {coord:.2f} | {rate:.1f} | "
              f"{cpu / statistics.median(v[0] for v in ref):.2f} | {rate / statistics.median(v[2] for v in ref):.2f} "
              f"| {max(v[3] for v in values):.1f} | {get_rate:.1f} | {max(v[5] for v in values):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
