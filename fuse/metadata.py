"""File attributes kept in object metadata, in the conventions of s3fs-fuse, so that a bucket
written by s3fs looks right through our mount and the other way round:

- ``x-amz-meta-mode``: the whole ``st_mode`` (type and permission bits) in decimal;
  ``x-amz-meta-uid`` / ``x-amz-meta-gid`` in decimal;
- ``x-amz-meta-mtime`` / ``-ctime`` / ``-atime``: seconds since the epoch, followed by ``.`` and
  exactly nine digits of nanoseconds when they are not zero (s3fs reads the digits after the
  dot as a count of nanoseconds, so they must be nine);
- a directory is a ``dir/`` object of Content-Type ``application/x-directory``; a prefix with
  keys under it and no such object is a directory too (an implicit one);
- a symbolic link is an object whose mode has ``S_IFLNK`` and whose body is the target;
- extended attributes are ``x-amz-meta-xattr``: a JSON object of name to base64 value,
  percent-encoded (``{"user.a":"dmFsdWU="}``), as s3fs writes them.

Objects written by other clients carry none of this: they get the mount's defaults.
"""

from __future__ import annotations

import base64
import binascii
import json
import stat
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

__all__ = ["Attr", "Defaults", "DIR_CONTENT_TYPE", "format_time", "parse_time", "attr_from_meta", "implicit_dir"]

DIR_CONTENT_TYPE = "application/x-directory"
NS = 1_000_000_000
BLOCK_SIZE = 4096


def format_time(ns: int) -> str:
    sec, nsec = divmod(ns, NS)
    return f"{sec}.{nsec:09d}" if nsec else str(sec)


def parse_time(value: str | None) -> int | None:
    """Nanoseconds from ``sec`` or ``sec.fraction`` (a fraction of fewer than nine digits is
    the decimal fraction other tools, rclone among them, write)."""
    if not value:
        return None
    sec, _, frac = value.strip().partition(".")
    try:
        seconds = int(sec)
        nanos = int((frac[:9]).ljust(9, "0")) if frac else 0
    except ValueError:
        return None
    return seconds * NS + nanos if seconds > 0 else None


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    try:
        if len(value) > 1 and value.startswith("0") and value.isdigit():
            return int(value, 8)  # s3fs reads it with strtol(base 0): a leading zero means octal
        return int(value, 0)
    except ValueError:
        return None


@dataclass(frozen=True)
class Defaults:
    """What objects without our metadata look like: owned by the mounting user."""

    uid: int
    gid: int
    file_mode: int = 0o644
    dir_mode: int = 0o755
    time_ns: int = 0  # implicit directories' times (the mount's start)


@dataclass
class Attr:
    mode: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    content_type: str = ""
    etag: str = ""
    explicit: bool = True  # a directory with its own `dir/` object (False: made of a prefix)
    xattrs: dict[str, bytes] = field(default_factory=dict)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.mode)

    def copy(self) -> Attr:
        # (dataclasses.replace runs __init__ again: several times slower, on every cached stat)
        dup = object.__new__(Attr)
        dup.__dict__.update(self.__dict__)
        dup.xattrs = dict(self.xattrs)
        return dup

    def stat(self) -> dict[str, int]:
        """The stat(2) fields, times in nanoseconds (the operations class sets use_ns)."""
        return {
            "st_mode": self.mode, "st_nlink": 2 if self.is_dir else 1, "st_uid": self.uid, "st_gid": self.gid,
            "st_size": self.size, "st_blocks": (self.size + 511) // 512, "st_blksize": BLOCK_SIZE,
            "st_atime": self.atime_ns, "st_mtime": self.mtime_ns, "st_ctime": self.ctime_ns,
        }

    def meta_headers(self) -> dict[str, str]:
        """The ``x-amz-meta-*`` headers (and the Content-Type) that store these attributes."""
        headers = {
            "x-amz-meta-mode": str(self.mode), "x-amz-meta-uid": str(self.uid), "x-amz-meta-gid": str(self.gid),
            "x-amz-meta-mtime": format_time(self.mtime_ns), "x-amz-meta-ctime": format_time(self.ctime_ns),
            "x-amz-meta-atime": format_time(self.atime_ns),
        }
        if self.xattrs:
            headers["x-amz-meta-xattr"] = format_xattrs(self.xattrs)
        headers["Content-Type"] = DIR_CONTENT_TYPE if self.is_dir else (
            self.content_type or "application/octet-stream")
        return headers


def format_xattrs(xattrs: dict[str, bytes]) -> str:
    """s3fs' ``x-amz-meta-xattr`` value."""
    doc = json.dumps({name: base64.b64encode(value).decode() for name, value in sorted(xattrs.items())},
                     ensure_ascii=False, separators=(",", ":"))
    return quote(doc, safe="")


def parse_xattrs(value: str | None) -> dict[str, bytes]:
    """Extended attributes from ``x-amz-meta-xattr`` (none if it is absent or unreadable)."""
    if not value:
        return {}
    try:
        doc = json.loads(unquote(value))
        return {str(name): base64.b64decode(str(data)) for name, data in doc.items()}
    except (ValueError, AttributeError, binascii.Error):
        return {}


def attr_from_meta(key: str, meta: dict[str, str], size: int, last_modified_ns: int, content_type: str,
                   etag: str, defaults: Defaults) -> Attr:
    """The attributes of object ``key`` from its ``x-amz-meta-*`` values (names without the
    prefix, lower case), falling back to the defaults and to its Last-Modified."""
    directory = key.endswith("/") or content_type.split(";")[0].strip() == DIR_CONTENT_TYPE
    mode = _parse_int(meta.get("mode"))
    if mode is None:
        mode = defaults.dir_mode if directory else defaults.file_mode
    if directory:
        mode = stat.S_IFDIR | stat.S_IMODE(mode)
    elif not stat.S_IFMT(mode):
        mode |= stat.S_IFREG
    uid = _parse_int(meta.get("uid"))
    gid = _parse_int(meta.get("gid"))
    mtime = parse_time(meta.get("mtime")) or last_modified_ns or defaults.time_ns
    ctime = parse_time(meta.get("ctime")) or mtime
    atime = parse_time(meta.get("atime")) or mtime
    return Attr(mode, defaults.uid if uid is None else uid, defaults.gid if gid is None else gid,
                0 if directory else size, atime, mtime, ctime, content_type, etag,
                xattrs=parse_xattrs(meta.get("xattr")))


def implicit_dir(defaults: Defaults) -> Attr:
    """A directory that exists only as the common prefix of keys under it."""
    t = defaults.time_ns
    return Attr(stat.S_IFDIR | defaults.dir_mode, defaults.uid, defaults.gid, 0, t, t, t, DIR_CONTENT_TYPE,
                explicit=False)
