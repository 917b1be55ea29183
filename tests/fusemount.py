"""`edgestore mount` of a test cluster's bucket, run in the foreground as a child process (so
tests can read its memory use or kill it), always taken down afterwards."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from ctypes.util import find_library
from pathlib import Path
from typing import Any

from mounts import take_down, unmount, wait_mounted

MOUNT_TIMEOUT_S = 30.0
LIBFUSES = ("3", "2")  # the default first


def mount_command(cluster: Any, bucket: str, mountpoint: Path, home: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgestore", "mount", bucket, str(mountpoint),
            "--cluster", str(cluster.data / "cluster.json"), "--cache-dir", str(home / "cache"),
            "--log-file", str(home / "mount.log"), *extra]


@contextlib.contextmanager
def edgestore_mount(cluster: Any, bucket: str, home: Path,
                    *extra: str) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """The bucket mounted at ``home/mnt`` by `edgestore mount --foreground`; unmounted after,
    even if the test failed or the mount process died."""
    home.mkdir(parents=True, exist_ok=True)
    mountpoint = home / "mnt"
    mountpoint.mkdir(exist_ok=True)
    (home / "mount.log").touch()
    proc = subprocess.Popen(mount_command(cluster, bucket, mountpoint, home, "--foreground", *extra),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(home / "stderr", "wb"))
    try:
        wait_mounted(mountpoint, proc, home / "mount.log", "edgestore mount", MOUNT_TIMEOUT_S)
        yield mountpoint, proc
    finally:
        if proc.poll() is None:
            take_down(mountpoint, proc)
        else:
            unmount(mountpoint)


def rss_peak_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def libfuse_missing(major: str) -> str | None:
    """Why a mount with libfuse ``major`` cannot be made here, or None."""
    if find_library({"3": "fuse3", "2": "fuse"}[major]) is None:
        return f"libfuse {major} is not installed (apt-get install {'fuse3' if major == '3' else 'libfuse2'})"
    return None


def loaded_libfuse(pid: int) -> int | None:
    """The major version of the libfuse the process has loaded (from its memory map), if any."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    found = {major for name, major in (("/libfuse3.so.3", 3), ("/libfuse.so.2", 2)) if name in maps}
    assert len(found) <= 1, f"both libfuse 2 and 3 loaded in {pid}"
    return found.pop() if found else None
