"""Mounts made by tests (rclone mount, s3fs, edgestore mount): seeing them, and taking them
down within a bounded time even when the filesystem process is stuck."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

DEFAULT_TIMEOUT_S = 30.0


def fuse_unusable() -> str | None:
    """Why FUSE mounts cannot be made here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "no fusermount3/fusermount (apt-get install fuse3)"
    return None


def mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/mounts") as mounts:
        return any(len(line.split()) > 1 and line.split()[1] == target for line in mounts)


def wait_mounted(path: Path, proc: subprocess.Popen[bytes], log: Path, what: str,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Until `path` is a mount point; fail with the filesystem's log if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not mounted(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not mount (exit {proc.poll()}): "
                                 f"{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def take_down(path: Path, proc: subprocess.Popen[bytes]) -> None:
    """Unmount, let the filesystem process end, and check nothing is left mounted."""
    unmount(path)
    stop(proc)
    assert not mounted(path), f"{path} is still mounted"


def unmount(path: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """fusermount -u, then (if something still holds it) a lazy unmount; bounded either way."""
    tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
    for args in ([tool, "-u", str(path)], [tool, "-uz", str(path)], ["umount", "-l", str(path)]):
        if not mounted(path):
            return
        try:
            subprocess.run(args, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        except (subprocess.TimeoutExpired, FileNotFoundError):
            continue
        deadline = time.monotonic() + 5
        while mounted(path) and time.monotonic() < deadline:
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Wait for a filesystem process to exit after its unmount; TERM, then KILL, if it does not."""
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
