"""A mount's options: from the command line or an fstab ``-o`` list, and the FUSE options
they become for libfuse 2 or 3. Loads no libfuse, so that the one to load can be chosen
from these options first (``libfuse.select``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MountOptions", "MountError", "parse_size", "split_options", "fuse_kwargs"]

log = logging.getLogger("edgestore.fuse")

MIB = 1024 * 1024
MIN_CACHE = 16 * MIB
# Options mount(8) and systemd hand to a helper that mean nothing to FUSE.
_MOUNT_ONLY = {"defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group", "_netdev", "nofail",
               "nobootwait", "bg", "fg"}
_OURS = {"endpoint", "access_key", "secret_key", "region", "cluster", "ca_file", "cache_dir", "cache_size",
         "ttl", "dir_ttl", "log_file", "part_size", "readahead", "libfuse", "kernel_readahead"}
# Options one libfuse takes and the other refuses ("unknown option", no mount), each with why
# leaving it out changes nothing: an fstab line written for one still mounts with the other.
_ONLY_IN = {
    2: {"big_writes": "libfuse 3 always sends large writes", "large_read": "only meant for Linux 2.4",
        "nonempty": "libfuse 3 always mounts over a non-empty directory"},
    3: {"clone_fd": "a libfuse 3 option", "max_idle_threads": "a libfuse 3 option",
        "max_threads": "a libfuse 3 option"},
}


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
    libfuse: str = "auto"  # which libfuse to load: auto (3 if installed, else 2), 3 or 2
    # The kernel's read-ahead (with libfuse 3, as root); 0: its default, 128 KiB. Not raised by
    # default: 1 MiB saved no CPU on sequential reads and cost some on random ones (docs/mounts.md).
    kernel_readahead: int = 0
    fuse_options: dict[str, str | bool] = field(default_factory=dict)
    cluster_status: Callable[[], dict[str, Any]] | None = None  # for statfs, when we may ask


def fuse_kwargs(opts: MountOptions, major: int) -> dict[str, Any]:
    """What mfusepy's FUSE is given to mount ``opts`` with libfuse ``major``."""
    kwargs: dict[str, Any] = {
        "foreground": True, "fsname": f"edgestore:{opts.bucket}", "subtype": "edgestore",
        "default_permissions": True,
        # The kernel keeps what we answer for the TTL, as we keep what the cluster answers: each
        # walk of a path checks every directory on it, each stat asks, and a Python callback
        # each was most of the mount's CPU (ls -lR: 15 per file). An open asks the cluster
        # (close-to-open) and then has the kernel drop the file's attributes (``invalidate``),
        # so that a size another mount gave it is seen at once. libfuse 2 cannot name the
        # file to the kernel: there the kernel asks every time, as before.
        "attr_timeout": opts.ttl_s if major == 3 else 0, "entry_timeout": opts.ttl_s, "negative_timeout": 0,
    }
    if major == 2:
        # Without it libfuse 2 has the kernel split every write into 4 KiB pages (a Python
        # callback each: 65536 for 256 MiB); with it, writes of up to 128 KiB (libfuse 3
        # sends up to 1 MiB, always).
        kwargs["big_writes"] = True
    if os.geteuid() == 0:
        kwargs["allow_other"] = True  # modes decide who may do what, as on a local filesystem
    for name, value in opts.fuse_options.items():
        other = 3 if major == 2 else 2
        if name in _ONLY_IN[other]:
            log.info("-o %s left out with libfuse %d: %s", name, major, _ONLY_IN[other][name])
            continue
        kwargs[name] = value
    if opts.debug:
        kwargs["debug"] = True
    return kwargs
