"""Mounting and unmounting: options (from the command line or an fstab ``-o`` list), a check
that the bucket answers, then FUSE in this process (``--foreground``) or in a daemon; the
caller gets its prompt back once the mount is ready."""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mfusepy

from edgestore.malloc import limit_malloc_arenas

from .files import Tuning
from .fs import EdgeFS
from .metadata import Defaults
from .s3client import S3Client, S3Error
from .space import ClusterSpace

__all__ = ["MountOptions", "MountError", "mount", "unmount", "is_mounted", "parse_size", "split_options"]

log = logging.getLogger("edgestore.fuse")

READY_TIMEOUT_S = 30.0
MIB = 1024 * 1024
MIN_CACHE = 16 * MIB
# Options mount(8) and systemd hand to a helper that mean nothing to FUSE.
_MOUNT_ONLY = {"defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group", "_netdev", "nofail",
               "nobootwait", "bg", "fg"}
_OURS = {"endpoint", "access_key", "secret_key", "region", "cluster", "ca_file", "cache_dir", "cache_size",
         "ttl", "dir_ttl", "log_file", "part_size", "readahead"}


class MountError(Exception):
    """The mount cannot be made: a one-line reason for the user."""


def parse_size(text: str) -> int:
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    raw = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = raw[-1:] if raw[-1:] in units and not raw[-1:].isdigit() else ""
    try:
        value = float(raw[:len(raw) - len(unit)])
    except ValueError:
        raise MountError(f"not a size: {text!r} (e.g. 512M, 2G)") from None
    return int(value * units[unit])


def split_options(items: list[str]) -> tuple[dict[str, str], dict[str, str | bool]]:
    """``-o a=b,c`` lists: (our options, FUSE's options); mount(8)-only ones are dropped."""
    ours: dict[str, str] = {}
    theirs: dict[str, str | bool] = {}
    for item in items:
        for opt in filter(None, (o.strip() for o in item.split(","))):
            name, eq, value = opt.partition("=")
            if name.replace("-", "_") in _OURS:
                ours[name.replace("-", "_")] = value
            elif name in _MOUNT_ONLY or name.startswith(("x-", "comment")):
                continue
            else:
                theirs[name] = value if eq else True
    return ours, theirs


@dataclass
class MountOptions:
    bucket: str
    mountpoint: Path
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    ca_file: str | None = None
    cache_dir: Path = Path("/var/cache/edgestore" if os.geteuid() == 0 else "~/.cache/edgestore").expanduser()
    cache_size: int = 1024 * MIB
    ttl_s: float = 1.0
    dir_ttl_s: float | None = None  # directories' attributes; None: DIR_TTL_FACTOR times ttl_s
    foreground: bool = False
    log_file: Path | None = None
    debug: bool = False
    part_size: int = 8 * MIB
    readahead: int = 8 * MIB  # the largest fill (GET) of a read; reads ahead go on disk, not in memory
    fuse_options: dict[str, str | bool] = field(default_factory=dict)
    cluster_status: Callable[[], dict[str, Any]] | None = None  # for statfs, when we may ask


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


def _fuse_kwargs(opts: MountOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "foreground": True, "fsname": f"edgestore:{opts.bucket}", "subtype": "edgestore",
        "default_permissions": True,
        # The kernel asks for attributes every time (our cache answers within its TTL): after a
        # close-to-open revalidation it must see the new size at once.
        "attr_timeout": 0, "entry_timeout": opts.ttl_s, "negative_timeout": 0,
    }
    if mfusepy.fuse_version_major == 2:
        # Without it libfuse 2 has the kernel split every write into 4 KiB pages (a Python
        # callback each: 65536 for 256 MiB); with it, writes of up to 128 KiB (libfuse 3
        # always has them, and rejects the option).
        kwargs["big_writes"] = True
    if os.geteuid() == 0:
        kwargs["allow_other"] = True  # modes decide who may do what, as on a local filesystem
    kwargs.update(opts.fuse_options)
    if opts.debug:
        kwargs["debug"] = True
    return kwargs


class _Ready(EdgeFS):
    """Tells the waiting parent that the kernel has the mount."""

    ready_fd: int | None = None

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
    fs.ready_fd = ready_fd
    log.info("mounting bucket %s of %s on %s", opts.bucket, opts.endpoint, opts.mountpoint)
    try:
        mfusepy.FUSE(fs, str(opts.mountpoint), **_fuse_kwargs(opts))
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
