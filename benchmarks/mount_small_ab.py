#!/usr/bin/env python3
"""A/B of `edgestore mount` on the workload's small-file steps, variants alternated in one run.

Against a running `edgestore up` (its cluster.json), each variant mounts its own bucket, into
which the 1000 small files of benchmarks/mount_workload.py are written once (untimed). Per
round, in alternating order, each variant runs on a fresh mount each: `ls -lR` of them, read
back + verify, untar of the workload's tarball (into a directory of its own each round) and
`diff -r` of it; with ``--steps write,...`` the 1000 files are written again first (into a
directory of their own each round), timed. Prints per step: seconds, CPU seconds of the mount process and of the nodes
(utime + stime from /proc), requests sent by kind; with --calls, the FUSE requests the kernel
sent by opcode too (libfuse's debug output, which costs the mount CPU: a separate run).

Variants are given as in benchmarks/mount_large_ab.py (NAME=SRC[,FUSE-OPTIONS]):

    sudo .venv/bin/python benchmarks/mount_small_ab.py --cluster DATA/cluster.json \\
        old=/tmp/old new=- --rounds 3
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from mount_large_ab import Variant
from mount_workload import cpu_seconds, make_tarball, requests_sent, small_body, small_path

SMALL_COUNT = 1000
TAR_FILES = 3000
# libfuse's debug output: "unique: 12, opcode: LOOKUP (1), nodeid: 1, insize: 46, pid: 345"
OPCODE = re.compile(rb"opcode: (\w+) \(")


class Work:
    def __init__(self, base: Path) -> None:
        self.tarball, self.tree, _ = make_tarball(base, TAR_FILES)
        self.round = 0

    def write(self, mnt: Path, into: str = "") -> None:
        for i in range(SMALL_COUNT):
            path = mnt / into / small_path(i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(small_body(i))

    def ls(self, mnt: Path) -> None:
        out = subprocess.run(["ls", "-lR", str(mnt / "small")], capture_output=True, text=True, check=True).stdout
        files = sum(1 for line in out.splitlines() if line.startswith("-"))
        if files != SMALL_COUNT:
            raise RuntimeError(f"ls -lR shows {files} files")

    def read(self, mnt: Path) -> None:
        bad = [i for i in range(SMALL_COUNT) if (mnt / small_path(i)).read_bytes() != small_body(i)]
        if bad:
            raise RuntimeError(f"{len(bad)} files read back wrong")

    def untar(self, mnt: Path) -> None:
        into = mnt / f"t{self.round}"
        into.mkdir()
        subprocess.run(["tar", "-xf", str(self.tarball), "-C", str(into)], check=True, capture_output=True)

    def diff(self, mnt: Path) -> None:
        subprocess.run(["diff", "-r", str(self.tree / "tree"), str(mnt / f"t{self.round}" / "tree")], check=True,
                       capture_output=True)


def timed(v: Variant, step: Callable[[Path], None], nodes: list[int], calls: bool) -> dict[str, Any]:
    """One step on a fresh mount of ``v``; with ``calls``, libfuse's debug output counted."""
    debug_log = v.home / "debug.log"
    if calls:
        saved = os.dup(2)
        with open(debug_log, "wb") as err:
            os.dup2(err.fileno(), 2)  # (the mount inherits it: a child of ours)
            try:
                v.up()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
    else:
        v.up()
    assert v.proc is not None
    pid = v.proc.pid
    sent0 = requests_sent(v.mnt)
    cpu0, nodes0, start = cpu_seconds(pid), sum(map(cpu_seconds, nodes)), time.perf_counter()
    step(v.mnt)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds(pid) - cpu0
    sent = {k: n - sent0.get(k, 0) for k, n in requests_sent(v.mnt).items() if n > sent0.get(k, 0)}
    out: dict[str, Any] = {"s": round(seconds, 2), "mount_cpu": round(cpu, 2),
                           "nodes_cpu": round(sum(map(cpu_seconds, nodes)) - nodes0, 2), "sent": sent}
    v.down()
    if calls:
        counts = collections.Counter(m[1].decode() for m in OPCODE.finditer(debug_log.read_bytes()))
        # (the mount's own getxattr of the request counts and the unmount's are in it too)
        out["calls"] = dict(counts.most_common())
    return out


def connect(cluster: Path) -> tuple[Any, list[int]]:
    """An S3 client of the running cluster, and its nodes' process ids."""
    info = json.loads(cluster.read_text())
    s3 = boto3.client("s3", endpoint_url=info["s3_endpoint"], region_name=info.get("region", "us-east-1"),
                      aws_access_key_id=info["access_key"], aws_secret_access_key=info["secret_key"])
    return s3, [node["pid"] for node in info["nodes"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", type=Path, required=True, help="cluster.json of a running `edgestore up`")
    parser.add_argument("--base", type=Path, default=Path("/tmp/edgestore-mount-small-ab"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", default="ls,read,untar,diff")
    parser.add_argument("--calls", action="store_true", help="count FUSE requests (libfuse debug output)")
    parser.add_argument("variants", nargs="+", help="NAME=SRC[,FUSE-OPTIONS]")
    args = parser.parse_args()
    s3, nodes = connect(args.cluster)
    args.base.mkdir(parents=True, exist_ok=True)
    work = Work(args.base)
    steps = {"write": lambda mnt: work.write(mnt, f"w{work.round}"), "ls": work.ls, "read": work.read,
             "untar": work.untar, "diff": work.diff}
    variants = [Variant(spec + (",debug" if args.calls else ""), args.base, args.cluster, f"small-ab-{i}")
                for i, spec in enumerate(args.variants)]
    for v in variants:
        s3.create_bucket(Bucket=v.bucket)
        v.up()
        work.write(v.mnt)
        v.down()
    try:
        for r in range(args.rounds):
            work.round = r
            for v in variants if r % 2 == 0 else variants[::-1]:
                for name in args.steps.split(","):
                    got = timed(v, steps[name], nodes, args.calls)
                    print(f"round {r} {v.name:10s} {name:6s} {json.dumps(got)} load {os.getloadavg()[0]:.1f}",
                          flush=True)
    finally:
        for v in variants:
            v.down()
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=v.bucket)
            keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
            for at in range(0, len(keys), 1000):
                s3.delete_objects(Bucket=v.bucket, Delete={"Objects": [{"Key": k} for k in keys[at:at + 1000]]})
            s3.delete_bucket(Bucket=v.bucket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
