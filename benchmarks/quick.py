#!/usr/bin/env python3
"""A quick benchmark against a running cluster (`edgestore up`): small-object PUT/GET
rates, large-object throughput, and the nodes' memory.

    .venv/bin/python benchmarks/quick.py --cluster edgestore-data/cluster.json

Small objects: 4 KiB PUTs then GETs of the same keys, `--concurrency` threads, each with
its own boto3 client. Large objects: one 256 MiB PUT then GET, streamed from and to
nothing (no disk on the client side). RSS: sampled from /proc for every node pid listed
in cluster.json (this machine only), idle before and peak during the run.

With `--write-amplification`, only the small PUTs run, and the figure is the bytes the
node processes wrote to disk (/proc/PID/io write_bytes) per byte stored, with every
device's SQLite WAL checkpointed at the start and at the end: a page is written once in
the WAL and again into the database at checkpoint, and leaving the second write out
would make the figure lie. The checkpoint runs in this process, so its own write_bytes
over the checkpoint is added. Small bodies appended to segment files (store/segments.py)
are written by the nodes and counted with the rest; benchmarks/wa_breakdown.py shows where
one device's bytes go, commit by commit. Also reported: node CPU seconds per PUT (utime + stime).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config


def client(info: dict[str, Any], endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=info["access_key"],
                        aws_secret_access_key=info["secret_key"], region_name="us-east-1",
                        config=Config(max_pool_connections=64, retries={"max_attempts": 1}))


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Peak(threading.Thread):
    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.peak, self.stop = pids, {p: 0.0 for p in pids}, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], rss_mib(pid))


def io_written(pid: int | str) -> int:
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def checkpoint_all(info: dict[str, Any]) -> int:
    """Checkpoint (and truncate) every node device's WAL; the bytes that wrote."""
    before = io_written("self")
    for node in info["nodes"]:
        for db in sorted(Path(node["data_dir"]).glob("*/meta.db")):
            conn = sqlite3.connect(db, timeout=30)
            try:
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                if busy:
                    sys.exit(f"{db}: the checkpoint could not finish (a reader held it back); try again")
            finally:
                conn.close()
    return io_written("self") - before


def write_amplification(info: dict[str, Any], bucket: str, count: int, concurrency: int,
                        replicas: int) -> dict[str, float]:
    pids = [int(n["pid"]) for n in info["nodes"]]
    checkpoint_all(info)
    written = sum(io_written(p) for p in pids)
    cpu = sum(cpu_seconds(p) for p in pids)
    start = time.perf_counter()
    endpoints = [n["url"] for n in info["nodes"]]
    clients = [client(info, endpoints[i % len(endpoints)]) for i in range(concurrency)]
    body = os.urandom(4096)

    def work(worker: int) -> None:
        for i in range(worker, count, concurrency):
            clients[worker].put_object(Bucket=bucket, Key=f"wa/{i:06d}", Body=body)
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(work, range(concurrency)))
    elapsed = time.perf_counter() - start
    cpu = sum(cpu_seconds(p) for p in pids) - cpu
    in_wal = sum(io_written(p) for p in pids) - written
    at_checkpoint = checkpoint_all(info)
    total = (in_wal + at_checkpoint) / (count * 4096)
    return {"put_ops_s": round(count / elapsed, 1), "node_cpu_ms_per_put": round(cpu / count * 1000, 2),
            "written_by_nodes_mib": round(in_wal / 2**20, 2),
            "written_at_checkpoint_mib": round(at_checkpoint / 2**20, 2),
            "write_amplification": round(total, 2), "write_amplification_per_replica": round(total / replicas, 2)}


def small_objects(info: dict[str, Any], bucket: str, count: int, concurrency: int) -> tuple[float, float]:
    endpoints = [n["url"] for n in info["nodes"]]
    clients = [client(info, endpoints[i % len(endpoints)]) for i in range(concurrency)]
    body = os.urandom(4096)

    def run(op: str) -> float:
        def work(worker: int) -> None:
            s3 = clients[worker]
            for i in range(worker, count, concurrency):
                if op == "put":
                    s3.put_object(Bucket=bucket, Key=f"small/{i:06d}", Body=body)
                else:
                    s3.get_object(Bucket=bucket, Key=f"small/{i:06d}")["Body"].read()
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(work, range(concurrency)))
        return count / (time.perf_counter() - start)
    return run("put"), run("get")


class Pattern:
    """size bytes of a repeating random pattern, readable like a file, never held whole."""

    def __init__(self, size: int) -> None:
        self.block = os.urandom(1024 * 1024 + 7)
        self.size, self.pos = size, 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n < 0 else min(n, self.size - self.pos)
        n = min(n, 1024 * 1024)
        start = self.pos % len(self.block)
        out = self.block[start:start + n]
        if len(out) < n:  # wrapped around the end of the pattern
            out += self.block[:n - len(out)]
        self.pos += n
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else (self.pos + offset if whence == 1 else self.size + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos


def large_object(info: dict[str, Any], bucket: str, size: int) -> tuple[float, float]:
    s3 = client(info, info["s3_endpoint"])
    start = time.perf_counter()
    s3.put_object(Bucket=bucket, Key="large", Body=Pattern(size), ContentLength=size)
    put_s = time.perf_counter() - start
    start = time.perf_counter()
    got = 0
    for chunk in s3.get_object(Bucket=bucket, Key="large")["Body"].iter_chunks(1024 * 1024):
        got += len(chunk)
    get_s = time.perf_counter() - start
    assert got == size
    mib = size / 2**20
    return mib / put_s, mib / get_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", type=Path, default=Path("edgestore-data/cluster.json"))
    parser.add_argument("--small-count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--large-mib", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-amplification", action="store_true",
                        help="only PUT --small-count 4 KiB objects and report bytes written per byte stored")
    parser.add_argument("--replicas", type=int, default=3, help="the cluster's replica count (default 3)")
    args = parser.parse_args()
    info = json.loads(args.cluster.read_text())
    pids = [int(n["pid"]) for n in info["nodes"]]
    idle = {pid: rss_mib(pid) for pid in pids}
    bucket = "bench-" + hashlib.md5(str(time.time()).encode()).hexdigest()[:8]
    client(info, info["s3_endpoint"]).create_bucket(Bucket=bucket)
    if args.write_amplification:
        wa = write_amplification(info, bucket, args.small_count, args.concurrency, args.replicas)
        print(json.dumps(wa, indent=2) if args.json else "\n".join(f"{k:34} {v}" for k, v in wa.items()))
        return 0
    peak = Peak(pids)
    peak.start()
    put_ops, get_ops = small_objects(info, bucket, args.small_count, args.concurrency)
    put_mibs, get_mibs = large_object(info, bucket, args.large_mib * 2**20)
    peak.stop.set()
    peak.join()
    result = {
        "small_put_ops_s": round(put_ops, 1), "small_get_ops_s": round(get_ops, 1),
        "large_put_mib_s": round(put_mibs, 1), "large_get_mib_s": round(get_mibs, 1),
        "rss_idle_mib": {str(p): round(v, 1) for p, v in idle.items()},
        "rss_peak_mib": {str(p): round(v, 1) for p, v in peak.peak.items()},
        "small_count": args.small_count, "concurrency": args.concurrency, "large_mib": args.large_mib,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"4 KiB PUT   {put_ops:8.1f} ops/s   ({args.small_count} objects, concurrency {args.concurrency})")
        print(f"4 KiB GET   {get_ops:8.1f} ops/s")
        print(f"{args.large_mib} MiB PUT {put_mibs:8.1f} MiB/s")
        print(f"{args.large_mib} MiB GET {get_mibs:8.1f} MiB/s")
        print(f"node RSS idle {min(idle.values()):.0f}-{max(idle.values()):.0f} MiB, "
              f"peak {max(peak.peak.values()):.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
