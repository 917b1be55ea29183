#!/usr/bin/env python3
"""A/B of `edgestore mount` on the workload's large-file steps, variants alternated in one run.

Against a running `edgestore up` (its cluster.json), each variant mounts its own bucket; per
round, in alternating order, each variant writes one file in 1 MiB writes, reads it back
sequentially on a fresh mount and does 1000 random 4 KiB preads of it on a fresh mount (the
steps of benchmarks/mount_workload.py). Prints per step: seconds, CPU seconds of the mount
process and of the nodes (utime + stime from /proc), requests sent by kind, peak RSS.

A variant is NAME=SRC[,FUSE-OPTIONS]: SRC is a tree with the package laid out as installed
(edgestore/, edgestore/fuse, edgestore/ring), put first on PYTHONPATH, or "-" for this
checkout. An older commit's tree:

    mkdir -p /tmp/old && git archive COMMIT edgestore fuse ring | tar -x -C /tmp/old \\
        && mv /tmp/old/fuse /tmp/old/ring /tmp/old/edgestore/
    sudo .venv/bin/python benchmarks/mount_large_ab.py --cluster DATA/cluster.json \\
        old=/tmp/old new=- new8=-,readahead=8M
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from mount_workload import FUSERMOUNT, cpu_seconds, large_block, mounted, requests_sent, rss_peak_kib

MIB = 1024 * 1024


class Variant:
    def __init__(self, spec: str, base: Path, cluster: Path, bucket: str) -> None:
        self.name, _, rest = spec.partition("=")
        src, _, self.fuse_opts = rest.partition(",")
        self.src = None if src in ("", "-") else src
        self.home, self.cluster, self.bucket = base / self.name, cluster, bucket
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def mnt(self) -> Path:
        return self.home / "mnt"

    def up(self) -> None:
        cache = self.home / "cache"
        subprocess.run(["rm", "-rf", str(cache)], check=True)
        cache.mkdir(parents=True)
        self.mnt.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.src:
            env["PYTHONPATH"] = self.src
        argv = [sys.executable, "-m", "edgestore", "mount", self.bucket, str(self.mnt), "--cluster",
                str(self.cluster), "--cache-dir", str(cache), "--foreground", "--log-file", str(self.home / "log")]
        if self.fuse_opts:
            argv += ["-o", self.fuse_opts]
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not mounted(self.mnt):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} did not mount; see {self.home / 'log'}")
            time.sleep(0.05)

    def down(self) -> None:
        subprocess.run([FUSERMOUNT, "-u", str(self.mnt)], check=False)
        if self.proc is not None:
            self.proc.wait(60)


def write(mnt: Path, mib: int) -> None:
    with open(mnt / "large.bin", "wb") as f:
        for n in range(mib):
            f.write(large_block(n))


def read(mnt: Path, mib: int) -> None:
    with open(mnt / "large.bin", "rb") as f:
        for n in range(mib):
            if f.read(MIB) != large_block(n):
                raise RuntimeError(f"MiB {n} read back wrong")


def random_4k(mnt: Path, mib: int) -> None:
    rng = random.Random(4096)
    fd = os.open(mnt / "large.bin", os.O_RDONLY)
    try:
        for _ in range(1000):
            offset = rng.randrange(mib * MIB // 4096) * 4096
            within = offset % MIB
            if os.pread(fd, 4096, offset) != large_block(offset // MIB)[within:within + 4096]:
                raise RuntimeError(f"4 KiB at {offset} read back wrong")
    finally:
        os.close(fd)


STEPS: dict[str, Callable[[Path, int], None]] = {"write": write, "read": read, "random": random_4k}


def timed(v: Variant, step: Callable[[Path, int], None], mib: int, nodes: list[int]) -> dict[str, Any]:
    """One step on a fresh mount of ``v``."""
    v.up()
    assert v.proc is not None
    pid = v.proc.pid
    cpu0, nodes0, start = cpu_seconds(pid), sum(map(cpu_seconds, nodes)), time.perf_counter()
    step(v.mnt, mib)
    seconds = time.perf_counter() - start
    out = {"s": round(seconds, 2), "mount_cpu": round(cpu_seconds(pid) - cpu0, 2),
           "nodes_cpu": round(sum(map(cpu_seconds, nodes)) - nodes0, 2), "sent": requests_sent(v.mnt),
           "rss_mib": rss_peak_kib(pid) // 1024}
    v.down()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", type=Path, required=True, help="cluster.json of a running `edgestore up`")
    parser.add_argument("--base", type=Path, default=Path("/tmp/edgestore-mount-ab"), help="mountpoints, caches")
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", default="write,read,random")
    parser.add_argument("variants", nargs="+", help="NAME=SRC[,FUSE-OPTIONS]")
    args = parser.parse_args()
    info = json.loads(args.cluster.read_text())
    s3 = boto3.client("s3", endpoint_url=info["s3_endpoint"], aws_access_key_id=info["access_key"],
                      aws_secret_access_key=info["secret_key"], region_name=info.get("region", "us-east-1"))
    nodes = [node["pid"] for node in info["nodes"]]
    variants = [Variant(spec, args.base, args.cluster, f"ab-{i}") for i, spec in enumerate(args.variants)]
    steps = args.steps.split(",")
    for v in variants:
        s3.create_bucket(Bucket=v.bucket)
        if "write" not in steps:  # the file the reads read, written once
            v.up()
            write(v.mnt, args.mib)
            v.down()
    try:
        for r in range(args.rounds):
            for v in variants if r % 2 == 0 else variants[::-1]:
                for name in steps:
                    got = timed(v, STEPS[name], args.mib, nodes)
                    print(f"round {r} {v.name:12s} {name:6s} {json.dumps(got)} load {os.getloadavg()[0]:.1f}",
                          flush=True)
    finally:
        for v in variants:
            if mounted(v.mnt):
                v.down()
            s3.delete_object(Bucket=v.bucket, Key="large.bin")
            s3.delete_bucket(Bucket=v.bucket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
