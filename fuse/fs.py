"""The filesystem: mfusepy operations over one bucket, a path ``/a/b`` being the key ``a/b``
and a directory ``/a`` the key ``a/`` (or just the prefix, when no such object exists).

The kernel enforces permissions from the modes we report (``default_permissions``) and, from
our lookups, that a name is either a file or a directory. Attributes and listings come from
the cache (a short TTL); opening a file always asks the server again (close-to-open)."""

from __future__ import annotations

import errno
import functools
import itertools
import json
import logging
import mimetypes
import os
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ._binding import mfusepy
from .cache import MetaCache, parent_of
from .dirtimes import DirTimes
from .files import CacheBudget, Handle, OpenFile, Tuning, io_error
from .metadata import DIR_CONTENT_TYPE, Attr, Defaults, attr_from_meta, format_xattrs, implicit_dir
from .readahead import ReadAhead
from .readbuf import pread_reply, set_reply
from .s3client import ListEntry, ListPage, S3Client, S3Error
from .space import ClusterSpace

__all__ = ["EdgeFS"]

log = logging.getLogger("edgestore.fuse")

NAME_MAX = 255
KEY_MAX = 1024
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
XATTR_CREATE, XATTR_REPLACE = 1, 2
XATTR_META_MAX = 2048  # S3's limit on all user metadata of an object
# Read-only on the root: the requests this mount has sent, by kind (JSON), for benchmarks.
REQUESTS_XATTR = "user.edgestore.requests"
RENAME_WORKERS = 8
READ_WORKERS = 8  # fills of open files' local copies: each streams one GET into its file
UPLOAD_WORKERS = 4  # parts of one file sent at once at close (s3fs sends five)
LOOKUP_KEYS = 16  # keys a lookup lists: `key`, and `key/` after the keys that sort between them
SCAN_PAGES = 1  # a lookup lists a whole directory if it fits in this many pages (else it asks for the name)
MAX_LARGE = 10_000  # directories remembered as too large for that
OPEN_FETCH = 128 * 1024  # what an open for reading fetches with the attributes (a small file whole)
S3FS_OLD_DIR_SUFFIX = "_$folder$"
# libfuse renames a file unlinked while open to this, and unlinks that at the last close:
# such names live only in this mount (the object is deleted at once).
HIDDEN_PREFIX = ".fuse_hidden"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Scan:
    """What one listing of a directory told: its names (all of them if ``complete``) and its
    own attributes (None: nothing there)."""

    names: dict[str, bool]
    complete: bool
    own: Attr | None


def _fail(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def s3_errors(func: F) -> F:
    """An S3 failure inside an operation answers EIO (EACCES for a refusal), logged once."""

    @functools.wraps(func)
    def wrapper(self: EdgeFS, *args: Any) -> Any:
        try:
            return func(self, *args)
        except S3Error as exc:
            raise io_error(f"{func.__name__}{args[:1]}", exc) from exc

    return wrapper  # type: ignore[return-value]


def _check_name(path: str) -> None:
    if len(path) * 4 <= NAME_MAX:
        return  # (a character is at most four bytes in UTF-8: no name of it can be too long)
    if any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in path.split("/")):
        raise _fail(errno.ENAMETOOLONG)
    if len(path.encode("utf-8", "surrogateescape")) > KEY_MAX:
        raise _fail(errno.ENAMETOOLONG)


def _key(path: str) -> str:
    return path[1:]


def below_of(path: str) -> str:
    """The start of the paths in directory ``path``."""
    return "/" if path == "/" else path + "/"


def _prefix(path: str) -> str:
    return "" if path == "/" else path[1:] + "/"


class EdgeFS(mfusepy.Operations):  # type: ignore[misc]
    use_ns = True  # times in nanoseconds, both ways

    def __init__(self, client: S3Client, tuning: Tuning, ttl_s: float = 1.0, defaults: Defaults | None = None,
                 space: ClusterSpace | None = None, dir_time_delay_s: float = 5.0,
                 dir_ttl_s: float | None = None) -> None:
        self.client = client
        self.tuning = tuning
        self.defaults = defaults or Defaults(os.getuid(), os.getgid(), time_ns=time.time_ns())
        self.cache = MetaCache(ttl_s, dir_ttl_s=dir_ttl_s)
        self.space = space or ClusterSpace(None)
        self.budget = CacheBudget(tuning.cache_bytes)
        # Directories' metadata is written late, but no later than another mount would see it
        # anyway (it caches directories' attributes for dir_ttl); a new directory's object
        # within the TTL (as late as another mount may see a listing).
        self.dirtimes = DirTimes(self._store_dir_time, min(dir_time_delay_s, self.cache.dir_ttl_s), ttl_s)
        self._root = implicit_dir(self.defaults)
        self._files: dict[str, OpenFile] = {}
        self._handles: dict[int, Handle] = {}
        self._dirs: dict[int, list[tuple[str, bool]]] = {}  # open directories: what readdir lists
        self._fh = itertools.count(1)
        self._lock = threading.RLock()
        self._large: dict[str, float] = {}  # directory -> when a lookup found it over SCAN_PAGES
        # Has the kernel drop what it caches of a path's attributes (set when it caches them).
        self.invalidate: Callable[[str], None] | None = None
        # Reads ahead and pieces of random reads; the parts of multipart uploads at close.
        self.read_pool = ThreadPoolExecutor(READ_WORKERS, thread_name_prefix="fetch")
        self.upload_pool = ThreadPoolExecutor(UPLOAD_WORKERS, thread_name_prefix="upload")

    # -- lifecycle ------------------------------------------------------------------------

    def init(self, path: str) -> None:
        self.dirtimes.start()

    def destroy(self, path: str) -> None:
        self.dirtimes.stop()
        with self._lock:
            files = list(self._files.values())
        for of in files:
            try:
                of.upload()
            except OSError as exc:
                log.error("unmounted with %s not uploaded: %s", of.key, exc)
        self.read_pool.shutdown(cancel_futures=True)
        self.upload_pool.shutdown()
        self.client.close()

    # -- looking things up ----------------------------------------------------------------

    def _context_owner(self) -> tuple[int, int]:
        uid, gid, _ = mfusepy.fuse_get_context()
        return uid, gid

    def _attr_of_head(self, key: str, head: Any) -> Attr:
        return attr_from_meta(key, head.meta, head.size, head.last_modified_ns, head.content_type, head.etag,
                              self.defaults)

    def _attr_of_entry(self, entry: ListEntry) -> Attr | None:
        """A listed object's attributes, if the listing carried its metadata."""
        if entry.meta is None:
            return None
        return attr_from_meta(entry.key, entry.meta, entry.size, entry.last_modified_ns, entry.content_type,
                              entry.etag, self.defaults)

    def _dir_of(self, key: str, page: ListPage) -> Attr | None:
        """The directory ``key`` as a listing of keys from ``key`` shows it: its own ``key/``
        object (with its metadata), or keys under it (an implicit directory)."""
        below = key + "/"
        for entry in page.entries:
            if entry.key == below:
                attr = self._attr_of_entry(entry)
                if attr is not None:
                    return attr
                head = self.client.head(below)
                return self._attr_of_head(below, head) if head is not None else implicit_dir(self.defaults)
            if entry.key.startswith(below):
                return implicit_dir(self.defaults)
        return implicit_dir(self.defaults) if any(p.startswith(below) for p in page.prefixes) else None

    def _fetch_dir(self, key: str) -> Attr | None:
        """A directory's attributes. Its listing (one page) has them (its own ``key/`` first)
        and is kept, so that the readdir and the lookups under it that usually follow need no
        request of their own; a directory known to be larger lists one key, and so does every
        directory when nothing is cached (a TTL of 0)."""
        if self.cache.ttl_s > 0 and not self._is_large("/" + key):
            return self._scan("/" + key, SCAN_PAGES, denies=False, own=True).own
        return self._dir_of(key, self.client.list_page(key + "/", None, max_keys=1, metadata=True))

    def _fetch(self, path: str, hint_dir: bool | None = None) -> Attr | None:
        """What the server has at ``path``: a file (``key``), a directory object (``key/``), keys
        under the prefix (an implicit directory), or nothing. Usually one listing of the keys
        from ``key`` on tells which, with the metadata (where the server lists it)."""
        key = _key(path)
        if hint_dir is True:
            return self._fetch_dir(key)
        page = self.client.list_page(key, None, max_keys=LOOKUP_KEYS, metadata=True)
        entry = next((e for e in page.entries if e.key == key), None)
        if entry is not None:
            attr = self._attr_of_entry(entry)
            if attr is not None:
                return attr
            head = self.client.head(key)
            if head is not None:
                return self._attr_of_head(key, head)
        attr = self._dir_of(key, page)
        if attr is None and page.next_token and max((e.key for e in page.entries), default="") < key + "/":
            return self._fetch_dir(key)  # siblings such as `key.txt` filled the page before `key/`
        return attr

    def _known(self, path: str) -> tuple[bool, Attr | None]:
        """What this mount knows of ``path`` without asking: (found, attributes), found with
        None meaning no such name. An open file's and a new directory's attributes are here."""
        if path == "/":
            return True, self.dirtimes.overlay(path, self._root)
        with self._lock:
            of = self._files.get(path)
            if of is not None:
                return True, of.attr.copy()
        made = self.dirtimes.created(path)
        if made is not None:
            return True, made  # (not on the server yet)
        found, attr = self.cache.attr(path)
        if attr is not None and attr.is_dir:
            attr = self.dirtimes.overlay(path, attr)
        return found, attr

    def _lookup(self, path: str) -> Attr | None:
        found, attr = self._known(path)
        if found:
            return attr
        since = self.cache.stamp()  # (what the server says is not cached if this mount changed it meanwhile)
        parent, name = parent_of(path)
        listing = self.cache.listing(parent)
        if listing is None and self.cache.ttl_s > 0 and not self._is_large(parent):
            # One listing of the parent answers this lookup and those of its siblings
            # (a walk of the tree looks them all up, one after the other). It is as fresh
            # as a request for this name would be, so this name's absence is believed.
            scan = self._scan(parent, SCAN_PAGES, denies=False, since=since)
            listing = scan.names
            found, attr = self.cache.attr(path)  # (a local change meanwhile is in the cache)
            if not found and scan.complete and name not in scan.names:
                found, attr = True, None
                self.cache.put_attr(path, None, since)
        if not found:
            if self.cache.denies(parent, name):
                attr = None
            else:
                attr = self._fetch(path, listing.get(name) if listing else None)
            self.cache.put_attr(path, attr, since)
        if attr is not None and attr.is_dir:
            attr = self.dirtimes.overlay(path, attr)
        return attr

    def _need(self, path: str) -> Attr:
        attr = self._lookup(path)
        if attr is None:
            raise _fail(errno.ENOENT)
        return attr

    def _touch_parent(self, path: str, ns: int) -> None:
        self.dirtimes.touch(parent_of(path)[0], ns)

    @s3_errors
    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, int]:
        if fh is not None and fh in self._handles:
            return self._handles[fh].file.attr.stat()
        if path is None:
            raise _fail(errno.ENOENT)
        _check_name(path)
        return self._need(path).stat()

    # -- directories ----------------------------------------------------------------------

    def _scan(self, path: str, max_pages: int | None, denies: bool, own: bool = False,
              since: int | None = None) -> Scan:
        """List directory ``path`` (up to ``max_pages`` pages): its names are cached if that was
        all of them (see ``MetaCache.put_listing`` for ``denies``), and its files' attributes
        when the listing carries them, unless this mount changed the directory meanwhile (after
        ``since``, by default now); with ``own``, its own attributes are returned too (a HEAD of
        its ``dir/`` object if the listing did not carry them)."""
        since = self.cache.stamp() if since is None else since
        prefix = _prefix(path)
        scan = Scan({}, True, None)
        attrs: dict[str, Attr] = {}
        marker: ListEntry | None = None
        for number, page in enumerate(self.client.list_all(prefix, metadata=True), start=1):
            for entry in page.entries:
                name = entry.key[len(prefix):]
                if not name:
                    marker = entry
                elif name.endswith(S3FS_OLD_DIR_SUFFIX):
                    scan.names[name[:-len(S3FS_OLD_DIR_SUFFIX)]] = True
                elif name not in (".", ".."):
                    scan.names.setdefault(name, False)
                    attr = self._attr_of_entry(entry)
                    if attr is not None and not attr.is_dir:
                        attrs[name] = attr
            for sub in page.prefixes:
                name = sub[len(prefix):].rstrip("/")
                if name and "/" not in name and name not in (".", ".."):
                    scan.names[name] = True  # a directory wins over a file of the same name
            if page.next_token and max_pages is not None and number >= max_pages:
                scan.complete = False
                self._large[path] = time.monotonic()
                if len(self._large) > MAX_LARGE:
                    self._large.clear()
                break
        if scan.complete:
            self.cache.put_listing(path, scan.names, denies, since)
        below = below_of(path)
        for name, attr in attrs.items():  # ls -l then stats them without a request each
            if not scan.names[name]:
                self.cache.put_attr(below + name, attr, since)
        if not own or path == "/":
            return scan
        if marker is not None:
            scan.own = self._attr_of_entry(marker)
            if scan.own is None:
                head = self.client.head(marker.key)
                scan.own = self._attr_of_head(marker.key, head) if head is not None else None
        if scan.own is None and scan.names:
            scan.own = implicit_dir(self.defaults)
        return scan

    def _is_large(self, path: str) -> bool:
        """Whether ``path`` recently listed more than a lookup lists (``SCAN_PAGES``)."""
        stamp = self._large.get(path)
        return stamp is not None and time.monotonic() - stamp < self.cache.dir_ttl_s

    def _listing(self, path: str) -> dict[str, bool]:
        names = self.cache.listing(path)
        if names is None:
            names = self._scan(path, None, denies=True).names
        below = below_of(path)
        with self._lock:
            for open_path in self._files:
                name = open_path[len(below):]
                if open_path.startswith(below) and "/" not in name and not name.startswith(HIDDEN_PREFIX):
                    names[name] = False
        for made in self.dirtimes.created_below(path):
            if "/" not in made[len(below):]:
                names[made[len(below):]] = True
        return names

    def fsyncdir(self, path: str, datasync: int, fh: int) -> None:
        # Its metadata (and that of the directories below) stored now, or EIO: not stored yet.
        if self.dirtimes.flush(path):
            raise _fail(errno.EIO)  # (the failed write is logged, and tried again at the next tick)

    @s3_errors
    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *sorted(self._listing(path))]

    def opendir(self, path: str) -> int:
        with self._lock:
            fh = next(self._fh)
            self._dirs[fh] = []
            return fh

    def releasedir(self, path: str | None, fh: int) -> None:
        with self._lock:
            self._dirs.pop(fh, None)

    @s3_errors
    def entries(self, path: str, fh: int, offset: int) -> list[tuple[str, bool]]:
        """The (name, is a directory) of open directory ``fh`` ("." and ".." first), for readdir
        with offsets: listed at offset 0 (a rewinddir lists again), later pieces from that."""
        with self._lock:
            entries = self._dirs.get(fh)
        if offset == 0 or not entries:
            entries = [(".", True), ("..", True), *sorted(self._listing(path).items())]
            with self._lock:
                if fh in self._dirs:
                    self._dirs[fh] = entries
        return entries

    def entry_stat(self, path: str, name: str, is_dir: bool) -> dict[str, int] | None:
        """The stat of entry ``name`` of directory ``path`` if this mount knows it without
        asking (a listing brings its files' attributes), for the kernel's READDIRPLUS: then it
        need not look the name up. None if not (it looks it up, as without READDIRPLUS)."""
        found, attr = self._known(below_of(path) + name)
        return attr.stat() if found and attr is not None and attr.is_dir == is_dir else None

    @s3_errors
    def mkdir(self, path: str, mode: int) -> None:
        _check_name(path)
        uid, gid = self._context_owner()
        now = time.time_ns()
        attr = Attr(stat.S_IFDIR | stat.S_IMODE(mode), uid, gid, 0, now, now, now, DIR_CONTENT_TYPE)
        if self.dirtimes.create_delay_s > 0:
            self.dirtimes.create(path, attr)  # its object written with what tar sets on it next
        else:
            self.client.put(_prefix(path), b"", attr.meta_headers())
        self.cache.update_attr(path, attr)
        self.cache.put_listing(path, {})
        self._touch_parent(path, now)

    def _has_children(self, path: str) -> bool:
        below = path + "/"
        with self._lock:
            if any(p.startswith(below) for p in self._files):
                return True
        if self.dirtimes.created_below(path):
            return True
        prefix = _prefix(path)
        page = self.client.list_page(prefix, None, max_keys=2)
        return any(e.key != prefix for e in page.entries) or bool(page.prefixes)

    @s3_errors
    def rmdir(self, path: str) -> None:
        attr = self._need(path)
        if not attr.is_dir:
            raise _fail(errno.ENOTDIR)
        if self._has_children(path):
            raise _fail(errno.ENOTEMPTY)
        with self.dirtimes.write_lock:  # (no pending write of it may follow the delete)
            self.dirtimes.forget(path)
            self.client.delete(_prefix(path))
        self.cache.forget(path)
        self.cache.update_attr(path, None)
        self._touch_parent(path, time.time_ns())

    def _store_dir_time(self, path: str, ns: int, attr: Attr | None = None, create: bool = False) -> bool:
        """DirTimes' writer: the directory object's metadata (``attr``, else what is known of it)
        with the new mtime and ctime; with ``create``, the object itself (a mkdir's)."""
        if path == "/":
            return False
        attr = attr.copy() if attr is not None else self._lookup(path)
        if attr is None or not attr.is_dir or not attr.explicit:
            return False
        attr.mtime_ns, attr.ctime_ns = max(attr.mtime_ns, ns), max(attr.ctime_ns, ns)
        key = _prefix(path)
        if create:
            self.client.put(key, b"", attr.meta_headers())
            self.cache.update_attr(path, attr)
            return True
        try:
            self.client.copy(key, key, attr.meta_headers())
        except S3Error as exc:
            if exc.status == 404:  # removed by another client meanwhile: trying again would not help
                return False
            raise  # DirTimes keeps it pending: tried again
        self.cache.update_attr(path, attr)
        return True

    # -- files ----------------------------------------------------------------------------

    def _new_handle(self, of: OpenFile, flags: int) -> int:
        with self._lock:
            of.refs += 1
            fh = next(self._fh)
            self._handles[fh] = Handle(of, flags, ReadAhead(self.tuning.readahead))
            return fh

    @s3_errors
    def create(self, path: str, mode: int, flags: int) -> int:
        _check_name(path)
        uid, gid = self._context_owner()
        now = time.time_ns()
        attr = Attr(stat.S_IFREG | stat.S_IMODE(mode), uid, gid, 0, now, now, now,
                    mimetypes.guess_type(path)[0] or "application/octet-stream")
        with self._lock:
            if path in self._files and flags & os.O_EXCL:
                raise _fail(errno.EEXIST)
            of = OpenFile(self.client, _key(path), attr, False, self.tuning, self.budget, self.read_pool,
                          self.upload_pool)
            self._files[path] = of
        self.cache.update_attr(path, attr)
        self._touch_parent(path, now)
        return self._new_handle(of, flags)

    def _open_file(self, path: str, fetch: bool = False) -> tuple[OpenFile, bytes]:
        """The file open at ``path``, or a new one from what the server says now (not the cache):
        with ``fetch``, one GET that also brings the file's first bytes (returned beside it)."""
        with self._lock:
            of = self._files.get(path)
        if of is not None:
            return of, b""
        key, first = _key(path), b""
        since = self.cache.stamp()
        if fetch:
            got = self.client.get_first(key, OPEN_FETCH)
            head = got[0] if got is not None else None
            first = got[1] if got is not None else b""
        else:
            head = self.client.head(key)
        if head is None:
            self.cache.forget(path)
            attr = self._lookup(path)
            raise _fail(errno.EISDIR if attr is not None and attr.is_dir else errno.ENOENT)
        attr = self._attr_of_head(key, head)
        if attr.is_dir:
            raise _fail(errno.EISDIR)
        self.cache.refresh_attr(path, attr, since)
        with self._lock:
            of = self._files.get(path)
            if of is not None:
                return of, b""
            of = self._files[path] = OpenFile(self.client, key, attr, True, self.tuning, self.budget, self.read_pool,
                                                  self.upload_pool)
        if self.invalidate is not None:
            # The kernel may hold an older size from before this open (for the TTL): reads
            # would stop at it. It asks again (and gets ``attr``) when it next needs it.
            self.invalidate(path)
        return of, first

    @s3_errors
    def open(self, path: str, flags: int) -> int:
        reads = flags & os.O_ACCMODE != os.O_WRONLY and not flags & os.O_TRUNC
        of, first = self._open_file(path, fetch=bool(reads))
        fh = self._new_handle(of, flags)
        if first:
            of.seed(first, self._handles[fh].ahead)
        if flags & os.O_TRUNC and of.attr.size:
            of.truncate(0)
        return fh

    def _handle(self, fh: int) -> Handle:
        handle = self._handles.get(fh)
        if handle is None:
            raise _fail(errno.EBADF)
        return handle

    @s3_errors
    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        handle = self._handle(fh)
        return handle.file.read(offset, size, handle.ahead)

    @s3_errors
    def read_buf(self, path: str | None, bufpp: Any, size: int, offset: int, fh: int) -> int:
        """What libfuse calls instead of ``read``: the reply in a buffer of its own (readbuf.py)."""
        handle = self._handle(fh)
        set_reply(bufpp, handle.file.read_with(offset, size, handle.ahead, pread_reply))
        return 0

    @s3_errors
    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        handle = self._handle(fh)
        with handle.file.lock:
            if handle.flags & os.O_APPEND:
                offset = handle.file.attr.size
            return handle.file.write(data, offset)

    @s3_errors
    def truncate(self, path: str | None, length: int, fh: int | None = None) -> None:
        if fh is not None and fh in self._handles:
            self._handles[fh].file.truncate(length)
            return
        if path is None:
            raise _fail(errno.ENOENT)
        of, _ = self._open_file(path)
        with self._lock:
            of.refs += 1
        try:
            of.truncate(length)
            of.upload()
        finally:
            self._drop_ref(path, of)

    def _sync(self, path: str | None, fh: int) -> None:
        of = self._handle(fh).file
        if not of.dirty:
            return  # (nothing to store: every close of a file read would count as a change here)
        of.upload()
        if of.key is not None:
            self.cache.update_attr("/" + of.key, of.attr)

    @s3_errors
    def flush(self, path: str | None, fh: int) -> None:
        self._sync(path, fh)

    @s3_errors
    def fsync(self, path: str | None, datasync: int, fh: int) -> None:
        self._sync(path, fh)

    def _drop_ref(self, path: str | None, of: OpenFile) -> None:
        with self._lock:
            of.refs -= 1
            last = of.refs == 0
            if last:
                for open_path in [p for p, f in self._files.items() if f is of]:
                    del self._files[open_path]
        if last:
            stored = of.dirty  # (a file only read changes nothing: its directory's listings stay good)
            try:
                of.upload()
            finally:
                of.close()
            if stored and of.key is not None:
                self.cache.update_attr("/" + of.key, of.attr)

    @s3_errors
    def release(self, path: str | None, fh: int) -> None:
        with self._lock:
            handle = self._handles.pop(fh, None)
        if handle is not None:
            self._drop_ref(path, handle.file)

    @s3_errors
    def unlink(self, path: str) -> None:
        attr = self._need(path)
        if attr.is_dir:
            raise _fail(errno.EISDIR)
        with self._lock:
            of = self._files.pop(path, None)
        exists = of.exists and of.key is not None if of is not None else True
        if of is not None:
            of.detach()
        if exists:
            self.client.delete(_key(path))
        self.cache.update_attr(path, None)
        if of is None or exists:
            self._touch_parent(path, time.time_ns())

    def _hide(self, path: str, hidden: str) -> None:
        """Unlink of an open file: the object goes now; the handles keep the local copy under
        the hidden name (so fstat still answers) until the last close."""
        with self._lock:
            of = self._files.pop(path)
            self._files[hidden] = of
        exists = of.exists
        of.detach()
        if exists:
            self.client.delete(_key(path))
        self.cache.update_attr(path, None)
        self._touch_parent(path, time.time_ns())

    # -- rename ---------------------------------------------------------------------------

    @s3_errors
    def rename(self, old: str, new: str) -> None:
        _check_name(new)
        if parent_of(new)[1].startswith(HIDDEN_PREFIX) and old in self._files:
            self._hide(old, new)
            return
        src = self._need(old)
        dst = self._lookup(new)
        if src.is_dir:
            self.dirtimes.flush(old)  # the keys are copied as they are: their metadata written first
            if dst is not None and dst.is_dir:
                self.dirtimes.flush(new)  # (no pending write of it may follow the rename)
            if dst is not None and not dst.is_dir:
                raise _fail(errno.ENOTDIR)
            if dst is not None and self._has_children(new):
                raise _fail(errno.ENOTEMPTY)
            self._rename_dir(old, new, src)
        else:
            if dst is not None and dst.is_dir:
                raise _fail(errno.EISDIR)
            self._rename_file(old, new, src)
        now = time.time_ns()
        self._touch_parent(old, now)
        self._touch_parent(new, now)

    def _rename_file(self, old: str, new: str, attr: Attr) -> None:
        with self._lock:
            of = self._files.get(old)
            replaced = self._files.pop(new, None)
        if of is not None:
            of.upload()  # the new name gets what the file holds now
            attr = of.attr.copy()
        if replaced is not None:
            replaced.detach()
        attr.ctime_ns = time.time_ns()
        self.client.copy(_key(old), _key(new), attr.meta_headers())
        self.client.delete(_key(old))
        with self._lock:
            if of is not None and self._files.get(old) is of:
                del self._files[old]
                self._files[new] = of
                of.key = _key(new)
                of.attr.ctime_ns = attr.ctime_ns
        self.cache.update_attr(old, None)
        self.cache.update_attr(new, attr)

    def _rename_dir(self, old: str, new: str, attr: Attr) -> None:
        """Every key under the old prefix is copied, then the old ones deleted; if a copy fails,
        the copies made are deleted and the old directory is left as it was."""
        below = old + "/"
        with self._lock:
            moving = [f for p, f in self._files.items() if p.startswith(below)]
        for of in moving:
            of.upload()
        src_prefix, dst_prefix = _prefix(old), _prefix(new)
        keys = [e.key for page in self.client.list_all(src_prefix, None) for e in page.entries]
        if len(dst_prefix + max((k[len(src_prefix):] for k in keys), key=len, default="")) > KEY_MAX:
            raise _fail(errno.ENAMETOOLONG)
        copied: list[str] = []
        failure: Exception | None = None

        def copy_one(key: str) -> str:
            self.client.copy(key, dst_prefix + key[len(src_prefix):])
            return dst_prefix + key[len(src_prefix):]

        with ThreadPoolExecutor(RENAME_WORKERS) as pool:
            for future in [pool.submit(copy_one, k) for k in keys]:
                try:
                    copied.append(future.result())
                except S3Error as exc:
                    failure = failure or exc
        if src_prefix not in keys:  # an implicit directory becomes an explicit one under its new name
            try:
                self.client.put(dst_prefix, b"", attr.meta_headers())
                copied.append(dst_prefix)
            except S3Error as exc:
                failure = failure or exc
        if failure is not None:
            self.client.delete_many(copied)
            raise io_error(f"rename of {old} to {new}", failure)
        left = self.client.delete_many(keys)
        if left:
            log.error("rename of %s: %d old keys could not be deleted", old, len(left))
        with self._lock:
            for open_path in [p for p in self._files if p.startswith(below)]:
                of = self._files.pop(open_path)
                moved = new + open_path[len(old):]
                self._files[moved] = of
                of.key = _key(moved)
        for path in (old, new):
            self.cache.forget(path)
            self.dirtimes.forget(path)
        self.cache.update_attr(old, None)

    # -- links and metadata ---------------------------------------------------------------

    @s3_errors
    def symlink(self, path: str, target: str) -> None:
        _check_name(path)
        uid, gid = self._context_owner()
        now = time.time_ns()
        body = target.encode("utf-8", "surrogateescape")
        attr = Attr(stat.S_IFLNK | 0o777, uid, gid, len(body), now, now, now, "application/octet-stream")
        attr.etag = self.client.put(_key(path), body, attr.meta_headers())
        self.cache.update_attr(path, attr)
        self._touch_parent(path, now)

    @s3_errors
    def readlink(self, path: str) -> str:
        attr = self._need(path)
        if not attr.is_link:
            raise _fail(errno.EINVAL)
        return self.client.get(_key(path)).decode("utf-8", "surrogateescape")

    def _change(self, path: str, change: Callable[[Attr], None]) -> None:
        """Apply ``change`` to the attributes of ``path`` and store them (CopyObject onto itself)."""
        with self._lock:
            of = self._files.get(path)
        if of is not None:
            with of.lock:
                change(of.attr)
                of.attr.ctime_ns = time.time_ns()
                if of.exists and not of.dirty:
                    self.client.copy(_key(path), _key(path), of.attr.meta_headers())
                self.cache.update_attr(path, of.attr)
            return
        with self.dirtimes.write_lock:
            attr = self._need(path)  # a directory's pending mtime included
            if attr.is_dir:
                self.dirtimes.take(path)
            change(attr)
            attr.ctime_ns = time.time_ns()
            if path == "/":
                self._root = attr
            elif attr.is_dir and attr.explicit and self.dirtimes.delay_s > 0:
                self.dirtimes.defer(path, attr)  # with tar's next chown, chmod or utimensat of it
            elif attr.is_dir and attr.explicit:
                self.client.copy(_prefix(path), _prefix(path), attr.meta_headers())
            elif attr.is_dir:
                self.client.put(_prefix(path), b"", attr.meta_headers())
                attr.explicit = True
            else:
                self.client.copy(_key(path), _key(path), attr.meta_headers())
            if path != "/":
                self.cache.update_attr(path, attr)

    @s3_errors
    def chmod(self, path: str, mode: int) -> None:
        def change(attr: Attr) -> None:
            attr.mode = stat.S_IFMT(attr.mode) | stat.S_IMODE(mode)

        self._change(path, change)

    @s3_errors
    def chown(self, path: str, uid: int, gid: int) -> None:
        def change(attr: Attr) -> None:
            if uid != -1:
                attr.uid = uid
            if gid != -1:
                attr.gid = gid

        self._change(path, change)

    @s3_errors
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        now = time.time_ns()
        atime, mtime = times if times is not None else (UTIME_NOW, UTIME_NOW)

        def change(attr: Attr) -> None:
            if atime != UTIME_OMIT:
                attr.atime_ns = now if atime == UTIME_NOW else atime
            if mtime != UTIME_OMIT:
                attr.mtime_ns = now if mtime == UTIME_NOW else mtime

        self._change(path, change)

    # -- extended attributes (kept in the object's metadata, as s3fs keeps them) -------------

    @s3_errors
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        if path == "/" and name == REQUESTS_XATTR:
            return json.dumps(dict(self.client.sent), sort_keys=True).encode()
        value = self._need(path).xattrs.get(name)
        if value is None:
            raise _fail(errno.ENODATA)
        return value

    @s3_errors
    def listxattr(self, path: str) -> list[str]:
        return sorted(self._need(path).xattrs)

    @s3_errors
    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> None:
        known = self._need(path).xattrs
        if options & XATTR_CREATE and name in known:
            raise _fail(errno.EEXIST)
        if options & XATTR_REPLACE and name not in known:
            raise _fail(errno.ENODATA)
        if len(format_xattrs({**known, name: bytes(value)})) > XATTR_META_MAX:
            raise _fail(errno.ENOSPC)

        def change(attr: Attr) -> None:
            attr.xattrs[name] = bytes(value)

        self._change(path, change)

    @s3_errors
    def removexattr(self, path: str, name: str) -> None:
        if name not in self._need(path).xattrs:
            raise _fail(errno.ENODATA)

        def change(attr: Attr) -> None:
            attr.xattrs.pop(name, None)

        self._change(path, change)

    # -- the filesystem -------------------------------------------------------------------

    def statfs(self, path: str) -> dict[str, int]:
        total, free = self.space.get()
        block = 4096
        return {"f_bsize": block, "f_frsize": block, "f_blocks": total // block, "f_bfree": free // block,
                "f_bavail": free // block, "f_files": 1 << 32, "f_ffree": 1 << 32, "f_favail": 1 << 32,
                "f_namemax": NAME_MAX}
