#!/usr/bin/env python3
"""`edgestore mount`, s3fs-fuse and rclone mount side by side, on one local cluster, in one run.

Starts a 4-node `edgestore up`, gives each mount its own bucket and runs the same workload
through each mountpoint: 1000 small files written in nested directories, `ls -lR`, read back
and verified; one 256 MiB file written and read sequentially; random 4 KiB reads of it; `mv`
of a 200-file directory; untar of a few thousand files and `diff -r` against a local copy.

A step's time runs until its result is in the bucket (a listing shows every written key with
its size, or the renamed keys moved): rclone's write-back cache uploads after close. Reads
and `ls -lR` start from a fresh mount (unmounted, cache directory emptied), so nothing is read
from a local copy or the kernel's page cache. A step that fails or takes longer than
--step-timeout is recorded as such (a stuck mount is taken away, which ends the stuck call)
and the run goes on. Prints the table and writes it, with the machine and the commands, to
docs/mounts.md (keeping its hand-written `## ` sections after the table).

    sudo .venv/bin/python benchmarks/mount_workload.py      # root: FUSE mounts, allow_other
    .venv/bin/python benchmarks/mount_workload.py --small-count 100 --large-mib 16 --tar-files 200 --no-write
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
EDGESTORE = [sys.executable, "-m", "edgestore"]
FUSERMOUNT = shutil.which("fusermount3") or "fusermount"


# -- the three mounts -----------------------------------------------------------------------

@dataclass
class Mount:
    """One way of mounting a bucket: the command (shown in the docs with keys elided) and its process."""

    name: str
    bucket: str
    home: Path
    argv: Callable[[Path], list[str]]
    shown: str
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    peak_rss_kib: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)  # step -> CPU seconds of the mount process
    requests: dict[str, dict[str, int]] = field(default_factory=dict)  # step -> requests sent, by kind

    @property
    def mnt(self) -> Path:
        return self.home / "mnt"

    def up(self) -> None:
        shutil.rmtree(self.home / "cache", ignore_errors=True)
        (self.home / "cache").mkdir(parents=True)
        self.mnt.mkdir(parents=True, exist_ok=True)
        with open(self.home / "mount.log", "ab") as log:
            done = subprocess.run(self.argv(self.home), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=120)
        deadline = time.monotonic() + 60
        while not mounted(self.mnt):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not mount (exit {done.returncode}); see {self.home}/mount.log")
            time.sleep(0.1)

    def pid(self) -> int | None:
        """The filesystem process: the one whose command line names our mountpoint."""
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(self.mnt).encode() in args:
                return int(entry)
        return None

    def down(self) -> None:
        pid = self.pid()
        if pid is not None:
            self.peak_rss_kib = max(self.peak_rss_kib, rss_peak_kib(pid))
        for args in ([FUSERMOUNT, "-u", str(self.mnt)], [FUSERMOUNT, "-uz", str(self.mnt)]):
            if mounted(self.mnt):
                subprocess.run(args, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while pid is not None and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid is not None and Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """A stuck mount: kill its process, so that the waiting call fails (ENOTCONN), and detach it."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        subprocess.run([FUSERMOUNT, "-uz", str(self.mnt)], capture_output=True, timeout=60)


def mounted(path: Path) -> bool:
    with open("/proc/mounts") as mounts:
        return any(len(f := line.split()) > 1 and f[1] == str(path) for line in mounts)


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_sent(mnt: Path) -> dict[str, int]:
    """What edgestore mount has sent, by kind (its root's read-only xattr); {} for other mounts."""
    try:
        return dict(json.loads(os.getxattr(mnt, "user.edgestore.requests")))
    except (OSError, ValueError):
        return {}


def rss_peak_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def make_mounts(info: dict[str, Any], base: Path, cluster_json: Path) -> list[Mount]:
    endpoint, access, secret = info["s3_endpoint"], info["access_key"], info["secret_key"]
    mounts = []

    home = base / "edgestore"
    mounts.append(Mount(
        "edgestore mount", "mounts-edgestore", home,
        lambda h: [*EDGESTORE, "mount", "mounts-edgestore", str(h / "mnt"), "--cluster", str(cluster_json),
                   "--cache-dir", str(h / "cache"), "--log-file", str(h / "edgestore.log")],
        "edgestore mount BUCKET MNT --cluster cluster.json --cache-dir CACHE"))

    home = base / "s3fs"
    home.mkdir(parents=True, exist_ok=True)
    passwd = home / "passwd"
    passwd.write_text(f"{access}:{secret}\n")
    passwd.chmod(0o600)
    s3fs_opts = f"passwd_file={passwd},url={endpoint},use_path_request_style,endpoint=us-east-1,allow_other"
    mounts.append(Mount(
        "s3fs-fuse", "mounts-s3fs", home,
        lambda h: ["s3fs", "mounts-s3fs", str(h / "mnt"), "-o", s3fs_opts],
        f"s3fs BUCKET MNT -o passwd_file=PASSWD,url={endpoint},use_path_request_style,endpoint=us-east-1,allow_other",
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS")}))

    home = base / "rclone"
    prefix = "RCLONE_CONFIG_ES_"
    rclone_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS", "RCLONE"))}
    rclone_env.update({prefix + "TYPE": "s3", prefix + "PROVIDER": "Other", prefix + "ENDPOINT": endpoint,
                       prefix + "ACCESS_KEY_ID": access, prefix + "SECRET_ACCESS_KEY": secret,
                       prefix + "REGION": "us-east-1", prefix + "FORCE_PATH_STYLE": "true",
                       "RCLONE_CONFIG": str(home / "rclone.conf")})
    home.mkdir(parents=True, exist_ok=True)
    (home / "rclone.conf").write_text("")
    mounts.append(Mount(
        "rclone mount", "mounts-rclone", home,
        lambda h: ["rclone", "mount", "es:mounts-rclone", str(h / "mnt"), "--daemon", "--allow-other",
                   "--vfs-cache-mode", "writes", "--cache-dir", str(h / "cache")],
        "rclone mount es:BUCKET MNT --daemon --allow-other --vfs-cache-mode writes --cache-dir CACHE "
        "(remote es: type s3, provider Other, force_path_style, from RCLONE_CONFIG_ES_* variables)",
        env=rclone_env))
    return mounts


# -- the workload ---------------------------------------------------------------------------

def small_body(i: int) -> bytes:
    return (hashlib.sha256(str(i).encode()).digest() * 256)[:1024 + (i * 37) % 7168]


def small_path(i: int) -> str:
    return f"small/d{i % 10}/e{i // 10 % 10}/f{i}.txt"


_BASE = hashlib.sha256(b"large").digest() * (MIB // 32)


def large_block(n: int) -> bytes:
    return (n.to_bytes(8, "big") + _BASE)[:MIB]


class Barrier:
    """Until a listing of the bucket shows what was written (keys and sizes) and nothing that
    was moved away: "the result is in the bucket"."""

    def __init__(self, s3: Any, bucket: str, timeout_s: float) -> None:
        self.s3, self.bucket, self.timeout_s = s3, bucket, timeout_s

    def listing(self, prefix: str) -> dict[str, int]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}

    def wait(self, prefix: str, expected: dict[str, int], gone: str | None = None) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            listed = self.listing(prefix)
            missing = [k for k, size in expected.items() if listed.get(k) != size]
            left = [k for k in self.listing(gone) if not k.endswith("/")] if gone else []
            if not missing and not left:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"not in the bucket after {self.timeout_s:.0f} s: {len(missing)} keys "
                                   f"missing (e.g. {missing[:2]}), {len(left)} left under {gone}")
            time.sleep(0.2)


@dataclass
class Step:
    """One timed step; ``fresh``: on a fresh mount; ``prepare``: untimed set-up before it."""

    name: str
    run: Callable[[Path, Barrier], str]
    fresh: bool = False
    prepare: Callable[[Path, Barrier], None] | None = None


@dataclass
class Workload:
    small_count: int
    large_mib: int
    random_reads: int
    rename_files: int
    tarball: Path
    tar_tree: Path
    tar_sizes: dict[str, int]
    only: list[str] | None = None  # starts of the names of the steps to run (None: all)

    def steps(self) -> list[Step]:
        steps = [
            Step(f"write {self.small_count} small files", self.write_small),
            Step("ls -lR", self.ls_lr, fresh=True),
            Step("read back + verify", self.read_small, fresh=True),
            Step(f"write {self.large_mib} MiB file", self.write_large),
            Step(f"read {self.large_mib} MiB sequentially", self.read_large, fresh=True),
            Step(f"{self.random_reads} random 4 KiB reads", self.random_4k, fresh=True),
            Step(f"rename {self.rename_files}-file dir", self.rename_dir, prepare=self.prepare_rename),
            Step(f"untar {len(self.tar_sizes)} files", self.untar),
            Step("diff -r", self.diff, fresh=True),
        ]
        return [s for s in steps if self.only is None or any(s.name.startswith(w) for w in self.only)]

    def write_small(self, mnt: Path, barrier: Barrier) -> str:
        for i in range(self.small_count):
            path = mnt / small_path(i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(small_body(i))
        barrier.wait("small/", {small_path(i): len(small_body(i)) for i in range(self.small_count)})
        return ""

    def ls_lr(self, mnt: Path, barrier: Barrier) -> str:
        out = subprocess.run(["ls", "-lR", str(mnt / "small")], capture_output=True, text=True, check=True,
                             timeout=3600).stdout
        files = sum(1 for line in out.splitlines() if line.startswith("-"))
        if files != self.small_count:
            raise RuntimeError(f"ls -lR shows {files} files, not {self.small_count}")
        return ""

    def read_small(self, mnt: Path, barrier: Barrier) -> str:
        bad = [i for i in range(self.small_count) if (mnt / small_path(i)).read_bytes() != small_body(i)]
        if bad:
            raise RuntimeError(f"{len(bad)} files read back wrong (e.g. {small_path(bad[0])})")
        return ""

    def write_large(self, mnt: Path, barrier: Barrier) -> str:
        with open(mnt / "large.bin", "wb") as f:
            for n in range(self.large_mib):
                f.write(large_block(n))
        barrier.wait("large.bin", {"large.bin": self.large_mib * MIB})
        return ""

    def read_large(self, mnt: Path, barrier: Barrier) -> str:
        with open(mnt / "large.bin", "rb") as f:
            for n in range(self.large_mib):
                if f.read(MIB) != large_block(n):
                    raise RuntimeError(f"MiB {n} of large.bin read back wrong")
            if f.read(1):
                raise RuntimeError("large.bin is longer than written")
        return ""

    def random_4k(self, mnt: Path, barrier: Barrier) -> str:
        rng = random.Random(4096)
        fd = os.open(mnt / "large.bin", os.O_RDONLY)
        try:
            for _ in range(self.random_reads):
                offset = rng.randrange(self.large_mib * MIB // 4096) * 4096
                within = offset % MIB
                if os.pread(fd, 4096, offset) != large_block(offset // MIB)[within:within + 4096]:
                    raise RuntimeError(f"4 KiB at {offset} read back wrong")
        finally:
            os.close(fd)
        return ""

    def prepare_rename(self, mnt: Path, barrier: Barrier) -> None:
        """The directory the rename moves, written (and in the bucket) before the clock starts."""
        (mnt / "torename").mkdir()
        for i in range(self.rename_files):
            (mnt / "torename" / f"r{i}.dat").write_bytes(small_body(i)[:512])
        barrier.wait("torename/", {f"torename/r{i}.dat": 512 for i in range(self.rename_files)})

    def rename_dir(self, mnt: Path, barrier: Barrier) -> str:
        os.rename(mnt / "torename", mnt / "renamed")
        if len(os.listdir(mnt / "renamed")) != self.rename_files:
            raise RuntimeError("the renamed directory is missing files")
        barrier.wait("renamed/", {f"renamed/r{i}.dat": 512 for i in range(self.rename_files)}, gone="torename/")
        return ""

    def untar(self, mnt: Path, barrier: Barrier) -> str:
        done = subprocess.run(["tar", "-xf", str(self.tarball), "-C", str(mnt)], capture_output=True, text=True,
                              timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"tar exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
        barrier.wait("tree/", self.tar_sizes)
        return ""

    def diff(self, mnt: Path, barrier: Barrier) -> str:
        done = subprocess.run(["diff", "-r", str(self.tar_tree / "tree"), str(mnt / "tree")], capture_output=True,
                              text=True, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"diff -r exited {done.returncode}: {(done.stdout + done.stderr).splitlines()[:2]}")
        return ""


def make_tarball(base: Path, count: int) -> tuple[Path, Path, dict[str, int]]:
    """A tarball of ``count`` files (100 B to 64 KiB) in nested directories, and its tree unpacked locally."""
    tree = base / "tar-source"
    shutil.rmtree(tree, ignore_errors=True)
    rng = random.Random(7)
    sizes = {}
    for i in range(count):
        key = f"tree/p{i % 7}/q{i % 13}/{'r' + str(i % 5) + '/' if i % 3 else ''}file{i}.bin"
        size = rng.choice([100, 700, 3000, 9000, 20000, 65536])
        path = tree / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        sizes[key] = size
    tarball = base / "tree.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(tree / "tree", arcname="tree")
    return tarball, tree, sizes


# -- running it ------------------------------------------------------------------------------

def timed(mount: Mount, step: Callable[[], str], timeout_s: float) -> str:
    """The step's seconds (and note), or why it failed; a step past its time has its mount killed."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        start = time.monotonic()
        try:
            note = step()
            outcome["cell"] = f"{time.monotonic() - start:.1f}" + (f" ({note})" if note else "")
        except Exception as exc:  # recorded in the table, not hidden
            outcome["cell"] = f"FAILED after {time.monotonic() - start:.0f} s: {str(exc)[:160]}"

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        mount.kill()
        worker.join(60)
        return f"TIMEOUT (> {timeout_s:.0f} s)"
    return str(outcome["cell"])


def run_mount(mount: Mount, work: Workload, s3: Any, timeout_s: float) -> dict[str, str]:
    s3.create_bucket(Bucket=mount.bucket)
    barrier = Barrier(s3, mount.bucket, timeout_s)
    cells: dict[str, str] = {}
    mount.up()
    try:
        for step in work.steps():
            if step.fresh or not mounted(mount.mnt) or not os.path.exists(mount.mnt):
                mount.down()
                mount.up()
            try:
                if step.prepare:
                    step.prepare(mount.mnt, barrier)
            except Exception as exc:
                cells[step.name] = f"FAILED in its set-up: {str(exc)[:160]}"
            else:
                pid, sent = mount.pid(), requests_sent(mount.mnt)
                cpu = cpu_seconds(pid)
                cells[step.name] = timed(mount, functools.partial(step.run, mount.mnt, barrier), timeout_s)
                mount.cpu_s[step.name] = cpu_seconds(pid) - cpu
                after = requests_sent(mount.mnt)
                if after:
                    mount.requests[step.name] = {k: n - sent.get(k, 0) for k, n in after.items() if n > sent.get(k, 0)}
            print(f"  {mount.name}: {step.name}: {cells[step.name]} (CPU {mount.cpu_s.get(step.name, 0):.1f} s"
                  f"{', requests ' + str(mount.requests[step.name]) if step.name in mount.requests else ''})",
                  flush=True)
    finally:
        mount.down()
    return cells


def start_cluster(data: Path, port: int) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "up.log", "ab") as log:
        up = subprocess.Popen([*EDGESTORE, "up", "--nodes", "4", "--data", str(data), "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    info_path = data / "cluster.json"
    while time.monotonic() < deadline:
        if info_path.exists() and all(_healthy(n["health_url"]) for n in json.loads(info_path.read_text())["nodes"]):
            return up, json.loads(info_path.read_text())
        time.sleep(0.5)
    os.killpg(up.pid, signal.SIGTERM)
    sys.exit(f"edgestore up did not come up; see {data / 'up.log'}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.machine())
    mem_kib = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")))

    def version(*cmd: str) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return (f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {mem_kib // 1024} MiB RAM, Linux "
            f"{platform.release()}, Python {platform.python_version()}; {version('s3fs', '--version')}; "
            f"{version('rclone', 'version')}; {version(FUSERMOUNT, '-V')}")


def render(mounts: list[Mount], table: dict[str, dict[str, str]], steps: list[str], args: argparse.Namespace,
           host: str, load: tuple[float, float]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Mounts: edgestore mount beside s3fs-fuse and rclone mount", "",
        f"Latest run: {when}, on {host}. Load average {load[0]:.2f} before, {load[1]:.2f} after; the machine "
        "is shared with other work, so only the ratios of one run mean much.", "",
        "One local `edgestore up` cluster (4 nodes, 3 replicas, on 127.0.0.1, HTTP); each mount its own bucket; "
        "the same steps through each mountpoint, one mount after the other. Seconds per step (lower is better). "
        "A step's time runs until its result is in the bucket (a listing shows every key written, with its "
        "size, or every key moved): rclone's write-back cache uploads a closed file later, and that wait is "
        "counted. `ls -lR` and the reads start on a fresh mount (unmounted, which also drops the kernel's "
        "page cache of its files, and its cache directory emptied), so what they read comes from the cluster.", "",
        "| step | " + " | ".join(m.name for m in mounts) + " |",
        "|---|" + "---:|" * len(mounts),
    ]
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(table[m.name].get(step, "-") for m in mounts) + " |")
    lines.append("| peak RSS of the mount process (MiB) | "
                 + " | ".join(f"{m.peak_rss_kib / 1024:.0f}" for m in mounts) + " |")
    lines += ["", "CPU seconds of the mount process per step (utime + stime, from /proc; less noisy than the "
              "wall clock on a shared machine, but not counting the work each mount leaves to the cluster):", "",
              "| step | " + " | ".join(m.name for m in mounts) + " |", "|---|" + "---:|" * len(mounts)]
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(f"{m.cpu_s[step]:.1f}" if step in m.cpu_s else "-" for m in mounts)
                     + " |")
    counted = [m for m in mounts if m.requests]
    for m in counted:
        kinds = sorted({k for per in m.requests.values() for k in per})
        lines += ["", f"Requests {m.name} sent per step (counted by its S3 client):", "",
                  "| step | all | " + " | ".join(kinds) + " |", "|---|---:|" + "---:|" * len(kinds)]
        for step in steps:
            per = m.requests.get(step, {})
            lines.append(f"| {step} | {sum(per.values())} | " + " | ".join(str(per.get(k, 0)) for k in kinds) + " |")
    lines += ["", "Commands:", "", "    sudo .venv/bin/python benchmarks/mount_workload.py"
              + (f" {' '.join(args.argv)}" if args.argv else ""), ""]
    lines += [f"- {m.name}: `{m.shown}`" for m in mounts]
    lines += [
        "", "Workload (benchmarks/mount_workload.py): small files 1-8 KiB, ten directories of ten of ten files; "
        "`ls -lR` of them (counts the files); every file read back and compared; one file of "
        f"{args.large_mib} MiB in 1 MiB writes, read back in 1 MiB reads and compared; {args.random_reads} preads "
        f"of 4 KiB at random aligned offsets in it; `mv` of a directory of {args.rename_files} files (written "
        f"before the clock starts); `tar -xf` of {args.tar_files} files of 100 B to 64 KiB in nested directories "
        "and `diff -r` of the result against the same tree on local disk.", "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/tmp/edgestore-mount-bench"))
    parser.add_argument("--port", type=int, default=8380)
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--large-mib", type=int, default=256)
    parser.add_argument("--random-reads", type=int, default=1000)
    parser.add_argument("--rename-files", type=int, default=200)
    parser.add_argument("--tar-files", type=int, default=3000)
    parser.add_argument("--step-timeout", type=float, default=900.0)
    parser.add_argument("--only", help="comma-separated subset: edgestore,s3fs,rclone")
    parser.add_argument("--steps", help="comma-separated subset of the steps, each a start of a step's name "
                        "(write 1,ls,read back,untar,diff: the small-file steps); a step reads what an earlier "
                        "one wrote, so keep those it needs")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "mounts.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/mounts.md alone")
    args = parser.parse_args()
    args.argv = sys.argv[1:]

    shutil.rmtree(args.data, ignore_errors=True)
    tarball, tar_tree, tar_sizes = make_tarball(args.data, args.tar_files)
    work = Workload(args.small_count, args.large_mib, args.random_reads, args.rename_files, tarball, tar_tree,
                    tar_sizes, args.steps.split(",") if args.steps else None)
    load_before = os.getloadavg()[0]
    up, info = start_cluster(args.data / "cluster", args.port)
    try:
        s3 = boto3.client("s3", endpoint_url=info["s3_endpoint"], aws_access_key_id=info["access_key"],
                          aws_secret_access_key=info["secret_key"], region_name="us-east-1")
        mounts = make_mounts(info, args.data / "mounts", args.data / "cluster" / "cluster.json")
        if args.only:
            wanted = args.only.split(",")
            mounts = [m for m in mounts if any(m.name.startswith(w) for w in wanted)]
        table = {}
        for mount in mounts:
            print(f"{mount.name}:", flush=True)
            table[mount.name] = run_mount(mount, work, s3, args.step_timeout)
        report = render(mounts, table, [step.name for step in work.steps()], args, machine(),
                        (load_before, os.getloadavg()[0]))
        print(report)
        if not args.no_write:
            old = args.out.read_text() if args.out.exists() else ""
            kept = old[old.find("\n## ") + 1:] if "\n## " in old else ""  # the hand-written sections
            args.out.write_text(report + ("\n" + kept if kept else ""))
            print(f"written to {args.out}")
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
