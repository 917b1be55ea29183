"""Mounting and unmounting: a check that the bucket answers, then FUSE (with the libfuse
``_binding`` loaded) in this process (``--foreground``) or in a daemon; the caller gets its
prompt back once the mount is ready. The options are ``options.py``'s."""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgestore.malloc import limit_malloc_arenas

from ._binding import FUSE, MAJOR, MINOR, invalidate, tune_connection
from .files import Tuning
from .fs import EdgeFS
from .metadata import Defaults
from .options import MIB, MIN_CACHE, MountError, MountOptions, fuse_kwargs
from .s3client import S3Client, S3Error
from .space import ClusterSpace

__all__ = ["MountOptions", "MountError", "mount", "unmount", "is_mounted"]

log = logging.getLogger("edgestore.fuse")

READY_TIMEOUT_S = 30.0


def is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/mounts") as mounts:
        return any(len(f := line.split()) > 1 and f[1] == target for line in mounts)


def _dead(path: Path) -> bool:
    """A mount whose filesystem process is gone answers ENOTCONN."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def _check(opts: MountOptions) -> None:
    if is_mounted(opts.mountpoint):
        if not _dead(opts.mountpoint):
            raise MountError(f"{opts.mountpoint} is already mounted")
        unmount(opts.mountpoint)  # what a killed mount left: take it away and mount again
    if opts.libfuse != "auto" and int(opts.libfuse) != MAJOR:  # chosen too late: mfusepy was loaded
        raise MountError(f"libfuse {opts.libfuse} was asked for, but libfuse {MAJOR} is loaded")
    if not opts.mountpoint.is_dir():
        raise MountError(f"{opts.mountpoint} is not a directory")
    if opts.cache_size < MIN_CACHE:
        raise MountError(f"--cache-size must be at least {MIN_CACHE // MIB}M (two parts of an upload)")
    if not os.path.exists("/dev/fuse"):
        raise MountError("/dev/fuse does not exist (load the fuse module; install fuse3)")
    client = S3Client(opts.endpoint, opts.bucket, opts.access_key, opts.secret_key, opts.region,
                      timeout_s=30, ca_file=opts.ca_file)
    try:
        client.list_page("", max_keys=1)
    except S3Error as exc:
        raise MountError(f"bucket {opts.bucket} at {opts.endpoint}: {exc}") from None
    finally:
        client.close()
    opts.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


def _logging(opts: MountOptions) -> None:
    root = logging.getLogger("edgestore.fuse")
    root.setLevel(logging.DEBUG if opts.debug else logging.INFO)
    handler: logging.Handler
    if opts.log_file:
        handler = logging.FileHandler(opts.log_file)
    elif opts.foreground:
        handler = logging.StreamHandler(sys.stderr)
    elif os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler("/dev/log")
    else:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s edgestore-mount[{os.getpid()}] %(levelname)s %(message)s"))
    root.addHandler(handler)


def _mount_device(mountpoint: Path) -> str | None:
    """The device number (``0:53``) of the last mount on ``mountpoint`` (an absolute path:
    resolving it would look it up in the mount, which from its own ``init`` waits forever):
    the name of its backing_dev_info in /sys/class/bdi."""
    target, found = str(mountpoint), None
    with open("/proc/self/mountinfo") as lines:
        for line in lines:
            fields = line.split()
            # (mountinfo writes a space in a path as \040, a backslash as \134.)
            if len(fields) > 4 and re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4]) == target:
                found = fields[2]
    return found


def _set_kernel_readahead(mountpoint: Path, size: int) -> bool:
    """Have the kernel read ahead ``size`` bytes on this mount (its default: 128 KiB), so that
    a sequential reader's reads reach the mount in requests of up to that size (as large as
    libfuse allows: 1 MiB with libfuse 3), not of 128 KiB. Root only (a file in /sys)."""
    device = _mount_device(mountpoint)
    try:
        if device is None:
            raise FileNotFoundError(f"{mountpoint} not in /proc/self/mountinfo")
        Path(f"/sys/class/bdi/{device}/read_ahead_kb").write_text(str(size // 1024))
    except OSError as exc:
        log.info("kernel read-ahead left at its default: %s", exc)
        return False
    return True


class _Ready(EdgeFS):
    """Tells the waiting parent that the kernel has the mount; sets up the connection."""

    ready_fd: int | None = None
    mountpoint = Path("/")
    kernel_readahead = 0

    def init_with_config(self, conn: Any, config: Any) -> None:
        # (mfusepy calls this instead of ``init`` when it is defined.) The kernel takes the
        # smaller of its read-ahead when this returns and what ``conn`` says: both are set.
        if MAJOR == 3 and conn is not None:
            tune_connection(conn)
            if self.kernel_readahead and _set_kernel_readahead(self.mountpoint, self.kernel_readahead):
                conn.max_readahead = self.kernel_readahead
        self.init("/")

    def init(self, path: str) -> None:
        super().init(path)
        if self.ready_fd is not None:
            os.write(self.ready_fd, b"1")
            os.close(self.ready_fd)
            self.ready_fd = None


def _serve(opts: MountOptions, ready_fd: int | None) -> int:
    # libfuse's threads and our pools each got a heap arena of their own, keeping what they freed.
    limit_malloc_arenas()
    client = S3Client(opts.endpoint, opts.bucket, opts.access_key, opts.secret_key, opts.region,
                      ca_file=opts.ca_file)
    tuning = Tuning(part_size=opts.part_size, readahead=opts.readahead, cache_bytes=opts.cache_size,
                    cache_dir=str(opts.cache_dir))
    fs = _Ready(client, tuning, opts.ttl_s, Defaults(os.getuid(), os.getgid(), time_ns=time.time_ns()),
                ClusterSpace(opts.cluster_status), dir_ttl_s=opts.dir_ttl_s)
    fs.ready_fd, fs.mountpoint, fs.kernel_readahead = ready_fd, opts.mountpoint, opts.kernel_readahead
    log.info("mounting bucket %s of %s on %s with libfuse %d.%d", opts.bucket, opts.endpoint, opts.mountpoint,
             MAJOR, MINOR)
    kwargs = fuse_kwargs(opts, MAJOR)
    if kwargs["attr_timeout"]:
        fs.invalidate = invalidate  # (the kernel caches attributes: an open must be able to drop them)
    try:
        FUSE(fs, str(opts.mountpoint), **kwargs)
    except RuntimeError as exc:
        log.error("FUSE failed: %s", exc)
        return 1
    log.info("unmounted %s", opts.mountpoint)
    return 0


def mount(opts: MountOptions) -> int:
    """Mount; in the background unless ``opts.foreground``. Returns an exit status."""
    _check(opts)
    if opts.foreground:
        _logging(opts)
        return _serve(opts, None)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(read_end)
        os.setsid()
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        _logging(opts)
        code = 1
        try:
            code = _serve(opts, write_end)
        finally:
            os._exit(code)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], READY_TIMEOUT_S)
    answer = os.read(read_end, 1) if ready else b""
    os.close(read_end)
    if answer == b"1":
        deadline = time.monotonic() + 5  # init runs just before the kernel lists the mount
        while not is_mounted(opts.mountpoint) and time.monotonic() < deadline:
            time.sleep(0.02)
        return 0
    raise MountError(f"the mount did not come up within {READY_TIMEOUT_S:.0f} s"
                     + ("" if opts.log_file is None else f"; see {opts.log_file}"))


def unmount(path: Path, timeout_s: float = 30.0) -> None:
    """fusermount3 -u; if busy or its process is gone, a lazy unmount (detached now, freed
    when the last user lets go)."""
    if not is_mounted(path):
        raise MountError(f"{path} is not mounted")
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    attempts = [[tool, "-u", str(path)], [tool, "-uz", str(path)]] if tool else []
    if os.geteuid() == 0:
        attempts.append(["umount", "-l", str(path)])
    errors: list[str] = []
    for args in attempts:
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        except (subprocess.TimeoutExpired, FileNotFoundError) as exc:
            errors.append(str(exc))
            continue
        if done.returncode == 0 and not is_mounted(path):
            return
        errors.append(done.stderr.strip())
    if is_mounted(path):
        raise MountError(f"cannot unmount {path}: {'; '.join(e for e in errors if e)}")
