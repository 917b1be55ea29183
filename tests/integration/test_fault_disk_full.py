"""One node's device fills up (a small SD card): client writes keep being acknowledged —
the full replica fails and a handoff takes its place —, nothing half-written is visible,
the full node keeps serving reads, and once space returns `repair --now` brings its
partitions back to full replication.

The device is a size-limited tmpfs mounted by the test (root only, as CI runs)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
from acked import Model
from clusterlib import LocalCluster, healthy
from conftest import make_s3
from opslib import cli, cluster_with_repair_interval, missing_copies, repair_until_converged, summary

from edgestore.store.blockid import BLOCK_ID
from edgestore.store.blocks import file_intact

FULL = 2                       # the node whose device fills up
DEVICE_BYTES = 32 * 1024 * 1024
BIG = 2_500_000                # three blocks
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small filesystem needs root (CI runs as root)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    # Background passes only when the test asks (repair --now), so what it sees is its own doing.
    with cluster_with_repair_interval(tmp_path_factory.mktemp("diskfull"), 3600) as local:
        yield local


def _umount(path: Path) -> None:
    for args in (["umount", str(path)], ["umount", "-l", str(path)]):
        if subprocess.run(args, capture_output=True, timeout=30).returncode == 0:
            return


@pytest.fixture
def small_device(cluster: LocalCluster) -> Iterator[Path]:
    """Node FULL's device moved, with what it holds, onto a tmpfs of DEVICE_BYTES."""
    device = Path(cluster.node(FULL)["data_dir"]) / "d1"
    cluster.kill(FULL, signal.SIGTERM)
    aside = device.with_name("d1.before")
    device.rename(aside)
    device.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DEVICE_BYTES},mode=0700", "edgestore-test",
                            str(device)], capture_output=True, text=True, timeout=30)
    assert mount.returncode == 0, f"cannot mount a tmpfs: {mount.stderr}"
    try:
        shutil.copytree(aside, device, dirs_exist_ok=True)
        cluster.restart(FULL)
        yield device
    finally:
        cluster.kill(FULL)    # nothing may hold the filesystem when it is unmounted
        _umount(device)


def fill(directory: Path) -> Path:
    """A file that takes every byte left on the filesystem."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (b"\0" * (1 << 20), b"\0" * 4096, b"\0"):
            while True:
                try:
                    if os.write(fd, chunk) < len(chunk):
                        break
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return filler


def bad_block_files(device: Path) -> list[str]:
    """Block files on a device whose bytes do not match the checksum their name carries."""
    bad = []
    fanned_out = [*(device / "blocks").glob("??/*"), *(device / "blocks").glob("??/??/*")]  # new ids, legacy ids
    for path in (p for p in fanned_out if p.is_file()):
        if not BLOCK_ID.match(path.name) or not file_intact(path.name, path.read_bytes()):
            bad.append(str(path))
    return bad


def listed(s3: Any, bucket: str) -> set[str]:
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys |= {c["Key"] for c in page.get("Contents", [])}
    return keys


def test_full_disk_sends_writes_to_handoffs_and_recovers_when_space_returns(cluster: LocalCluster,
                                                                            small_device: Path) -> None:
    clients = [make_s3(cluster.url(i), *cluster.credentials) for i in range(cluster.nodes)]
    bucket, model = "disk-full", Model()
    clients[0].create_bucket(Bucket=bucket)
    for i in range(8):
        model.put(clients[i % cluster.nodes], bucket, f"before-{i}", os.urandom(BIG if i % 2 else 3000 + i))

    filler = fill(small_device)
    assert shutil.disk_usage(small_device).free < 64 * 1024
    during = []
    for i in range(16):   # every node coordinates some, the full one too
        key = f"during-{i}"
        model.put(clients[i % cluster.nodes], bucket, key, os.urandom(BIG if i % 2 else 2000 + i))
        during.append(key)
    model.put(clients[FULL], bucket, "before-1", os.urandom(BIG))     # overwrites through the full node
    model.put(clients[FULL], bucket, "before-2", b"small overwrite")
    model.delete(clients[FULL], bucket, "before-3")
    full_url = cluster.url(FULL)
    skipped = [p for p in missing_copies(cluster, bucket, during) if full_url in p]
    assert skipped, "the full device took every write: it was not full"

    # Nothing half-written: no temp file kept, every block file whole, the listing exact.
    assert list((small_device / "blocks" / "tmp").iterdir()) == []
    assert bad_block_files(small_device) == []
    live = {k for k, v in model.objects.items() if v is not None}
    for client in clients:
        assert listed(client, bucket) == live
    model.check(clients[FULL], bucket)     # the full node keeps serving reads

    # Repair while still full: pushes to the full device fail, and are counted; nothing
    # held on handoffs is dropped, and the node stays up.
    still_full = summary(cli(cluster, "repair", "--now"))
    assert still_full["errors"] > 0 and still_full["partitions dropped"] == 0, still_full
    assert healthy(cluster.node(FULL)["health_url"])
    assert list((small_device / "blocks" / "tmp").iterdir()) == []
    model.check(clients[0], bucket)

    filler.unlink()
    converged = repair_until_converged(cluster)
    assert missing_copies(cluster, bucket, sorted(live)) == []
    assert bad_block_files(small_device) == []
    for client in clients:
        model.check(client, bucket)
    log = Path(cluster.node(FULL)["log"]).read_text(errors="replace")
    assert "Traceback" not in log, "the full node failed with an unexpected error"
    print(f"\ndisk full: node {FULL}'s {DEVICE_BYTES >> 20} MiB device filled; {len(during) + 3} writes "
          f"acknowledged while full ({len(skipped)} replicas of them went to handoffs instead), "
          f"{len(live)} live objects; repair while full: {still_full['errors']} pushes failed, nothing dropped; "
          f"after space returned: {converged}")
