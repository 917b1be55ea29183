#!/usr/bin/env python3
"""A/B of bucket listings between two versions of the code, side by side on one machine.

    .venv/bin/python benchmarks/listing_ab.py --code old=/tmp/old-tree --code new=. \\
        --port 19400 --data /tmp/listing-ab --rounds 3

Each `--code LABEL=TREE` (a checkout: TREE/edgestore, TREE/ring, TREE/fuse) gets its own
4-node `edgestore up` (ports PORT, PORT+10, ...), run with that tree's code first on the
import path. Each cluster gets the same 10,000-object listing bucket (`edgestore bench`'s
names), then the rounds alternate between the clusters (the order flips every round):
through every node's endpoint in turn (a node holding a replica of the bucket's listing
partition or not), the Swift API's full and delimited listings, then S3's, with the same
client as `edgestore bench`. Reported per (code, api, phase, endpoint role): the median
listings per second and the median node CPU (utime + stime of the cluster's processes)
per listing, and the ratios of each code to the first. The machine is shared: compare
the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgestore.bench.scenarios import Settings, fill_bucket, list_names  # noqa: E402
from edgestore.bench.targets import S3Target, SwiftTarget, Target  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from side_by_side import _healthy, cpu_seconds, process_tree  # noqa: E402

BUCKET = "listing-ab"


@dataclass
class Cluster:
    label: str
    data: Path
    up: subprocess.Popen[bytes]
    info: dict[str, Any] = field(default_factory=dict)

    def urls(self) -> list[str]:
        return [str(node["url"]) for node in self.info["nodes"]]

    def target(self, api: str, index: int) -> Target:
        url = self.urls()[index]
        if api == "swift":
            return SwiftTarget(f"{url}/auth/v1.0", "default:admin", self.info["secret_key"])
        return S3Target(url, self.info["access_key"], self.info["secret_key"])

    def cpu_s(self) -> float:
        return cpu_seconds(process_tree([self.up.pid]))


def start(label: str, tree: Path, data: Path, port: int) -> Cluster:
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    log = open(data / "up.log", "ab")
    up = subprocess.Popen([sys.executable, "-m", "edgestore", "up", "--nodes", "4", "--data", str(data),
                           "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                          cwd=data, start_new_session=True)   # (a checkout as cwd would come first on the path)
    cluster = Cluster(label, data, up)
    deadline = time.monotonic() + 120
    info_path = data / "cluster.json"
    while time.monotonic() < deadline:
        if info_path.exists() and all(_healthy(n["health_url"]) for n in json.loads(info_path.read_text())["nodes"]):
            cluster.info = json.loads(info_path.read_text())
            return cluster
        time.sleep(0.5)
    stop(cluster)
    sys.exit(f"{label}: edgestore up did not come up; see {data / 'up.log'}")


def stop(cluster: Cluster) -> None:
    try:
        os.killpg(cluster.up.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    cluster.up.wait(timeout=60)


def replica_nodes(cluster: Cluster) -> set[int]:
    """Indexes of the nodes that hold a replica of the listing bucket's partition."""
    done = subprocess.run([sys.executable, "-m", "edgestore", "locate", "--cluster", str(cluster.data / "cluster.json"),
                           BUCKET, list_names(1)[0], "--json"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        sys.exit(f"locate failed: {done.stderr}")
    urls = [u.rstrip("/") for u in cluster.urls()]
    return {urls.index(r["node"].rstrip("/")) for r in json.loads(done.stdout)["replicas"]}


async def fill(cluster: Cluster, count: int) -> None:
    target = cluster.target("swift", 0)
    await target.open(8)
    try:
        await target.create_bucket(BUCKET)
        await fill_bucket(target, BUCKET, list_names(count), Settings(bucket=BUCKET, concurrency=8, progress=False))
    finally:
        await target.close()


async def measure(cluster: Cluster, api: str, index: int, delimiter: str, repeats: int,
                  expect: int) -> tuple[float, float]:
    """(listings per second, node CPU seconds per listing)."""
    target = cluster.target(api, index)
    await target.open(1)
    try:
        await target.list(BUCKET, delimiter)   # warm: connection, token, caches
        cpu, started = cluster.cpu_s(), time.monotonic()
        for _ in range(repeats):
            seen = await target.list(BUCKET, delimiter)
            if seen != expect:
                raise SystemExit(f"{cluster.label} {api} listed {seen} entries, not {expect}")
        return repeats / (time.monotonic() - started), (cluster.cpu_s() - cpu) / repeats
    finally:
        await target.close()


def settle(clusters: list[Cluster], quiet_core: float = 0.15, max_s: float = 120.0) -> None:
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        before = [c.cpu_s() for c in clusters]
        time.sleep(2)
        if all((c.cpu_s() - b) / 2 < quiet_core for c, b in zip(clusters, before, strict=True)):
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", action="append", required=True, metavar="LABEL=TREE")
    parser.add_argument("--port", type=int, default=19400)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full", type=int, default=4, help="full listings per measurement")
    parser.add_argument("--delimited", type=int, default=40, help="delimited listings per measurement")
    parser.add_argument("--apis", default="swift,s3")
    parser.add_argument("--nodes", default="0,1,2,3", help="endpoints to list through")
    args = parser.parse_args()
    codes = [(c.split("=", 1)[0], Path(c.split("=", 1)[1]).resolve()) for c in args.code]
    clusters: list[Cluster] = []
    samples: dict[tuple[str, str, str, str], list[tuple[float, float]]] = {}
    try:
        for i, (label, tree) in enumerate(codes):
            clusters.append(start(label, tree, args.data / label, args.port + 10 * i))
        for cluster in clusters:
            asyncio.run(fill(cluster, args.objects))
        roles = {c.label: replica_nodes(c) for c in clusters}
        print(f"replica nodes: {roles}", flush=True)
        settle(clusters)
        for rnd in range(args.rounds):
            order = clusters if rnd % 2 == 0 else clusters[::-1]
            for api in args.apis.split(","):
                for phase, delimiter, repeats, expect in (("full", "", args.full, args.objects),
                                                          ("delimiter", "/", args.delimited, 100)):
                    for index in (int(n) for n in args.nodes.split(",")):
                        for cluster in order:
                            role = "replica" if index in roles[cluster.label] else "other"
                            rate, cpu = asyncio.run(measure(cluster, api, index, delimiter, repeats, expect))
                            samples.setdefault((cluster.label, api, phase, role), []).append((rate, cpu))
                            print(f"round {rnd} {cluster.label} {api} {phase} node{index} ({role}): "
                                  f"{rate:.1f}/s, {cpu * 1000:.1f} node CPU-ms", flush=True)
    finally:
        for cluster in clusters:
            stop(cluster)
    base = codes[0][0]
    print(f"\nmedians ({args.rounds} rounds); ratios to {base}")
    print("| code | api | phase | endpoint | listings/s | node CPU-ms | rate ratio | CPU ratio |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for (label, api, phase, role), values in sorted(samples.items(), key=lambda kv: (kv[0][1:], kv[0][0])):
        rate = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        ref = samples.get((base, api, phase, role), values)
        ref_rate = statistics.median(v[0] for v in ref)
        ref_cpu = statistics.median(v[1] for v in ref)
        print(f"| {label} | {api} | {phase} | {role} | {rate:.1f} | {cpu * 1000:.1f} | "
              f"{rate / ref_rate:.2f} | {cpu / ref_cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
