"""The mount's cache of attributes and directory listings: entries live for a short TTL, so
changes made by other clients show up within it; the mount's own changes update it at once.
Negative entries (no such name) are cached too. Opening a file re-validates it (close-to-open
consistency), whatever the cache holds. A directory's attributes live longer (``dir_ttl_s``,
by default ``DIR_TTL_FACTOR`` times the TTL): every path walk looks up each directory on the
way, the kernel again each TTL, and directories change rarely (their times kept by this mount
apart). The price: another mount's chmod, chown or removal of a directory shows here that late.

What the server said is cached only if the mount changed nothing in that directory while the
request was out: a listing sent before a local unlink could otherwise bring the name back for
the TTL. Callers take a ``stamp()`` before the request and hand it to ``put_attr`` /
``put_listing``; each local change (``update_attr``, ``forget``) numbers its directory anew."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .metadata import Attr

__all__ = ["MetaCache", "parent_of", "drop_tree"]

MAX_ENTRIES = 100_000
DIR_TTL_FACTOR = 30


def parent_of(path: str) -> tuple[str, str]:
    """('/a/b', 'c') for '/a/b/c'; ('/', 'c') for '/c'."""
    head, _, name = path.rpartition("/")
    return head or "/", name


def drop_tree(table: dict[str, Any], path: str) -> None:
    """Remove the entries of ``path`` and of every path under it."""
    below = path.rstrip("/") + "/"
    for cached in [p for p in table if p == path or p.startswith(below)]:
        del table[cached]


class MetaCache:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic,
                 dir_ttl_s: float | None = None) -> None:
        self.ttl_s = ttl_s
        self.dir_ttl_s = ttl_s * DIR_TTL_FACTOR if dir_ttl_s is None else dir_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._attrs: dict[str, tuple[float, Attr | None]] = {}
        self._listings: dict[str, tuple[float, dict[str, bool]]] = {}  # dir -> {name: is_dir}
        self._partial: set[str] = set()  # listings that may not answer "no such name" (see put_listing)
        self._seq = 0  # local changes so far: a stamp()
        self._changed: dict[str, int] = {}  # directory -> the stamp of the last local change of a name in it
        self._moved: dict[str, int] = {}  # directory -> the stamp of its removal or rename (its whole tree)
        self._floor = 0  # a stamp older than this may have missed changes forgotten by _trim_changes

    def _fresh(self, stamp: float, attr: Attr | None = None) -> bool:
        ttl = self.dir_ttl_s if attr is not None and attr.is_dir else self.ttl_s
        return self._clock() - stamp < ttl

    def _trim(self, table: dict[str, tuple[float, object]]) -> None:
        if len(table) < MAX_ENTRIES:
            return
        for path in [p for p, (stamp, _) in table.items() if not self._fresh(stamp)]:
            del table[path]
        if len(table) >= MAX_ENTRIES:
            table.clear()
        self._partial.intersection_update(self._listings)

    # -- what changed here while a request was out --------------------------------------

    def stamp(self) -> int:
        """Taken before a request whose answer is cached: ``put_*`` drop that answer if the mount
        changed the directory after it."""
        with self._lock:
            return self._seq

    def _mark(self, directory: str, tree: bool = False) -> None:
        self._seq += 1
        (self._moved if tree else self._changed)[directory] = self._seq
        if len(self._changed) + len(self._moved) > MAX_ENTRIES:
            self._changed.clear()
            self._moved.clear()
            self._floor = self._seq

    def _overtaken(self, directory: str, since: int | None) -> bool:
        """Whether a local change in ``directory`` (or a move of it or of a directory above it)
        came after stamp ``since`` (None: the caller's answer is its own change, never overtaken)."""
        if since is None or not self._seq:
            return False
        if since < self._floor or self._changed.get(directory, 0) > since:
            return True
        while True:
            if self._moved.get(directory, 0) > since:
                return True
            if directory == "/":
                return False
            directory = parent_of(directory)[0]

    # -- attributes -----------------------------------------------------------------------

    def attr(self, path: str) -> tuple[bool, Attr | None]:
        """(found, attr): found with None means the name is known not to exist."""
        with self._lock:
            entry = self._attrs.get(path)
            if entry is None or not self._fresh(*entry):
                return False, None
            return True, entry[1].copy() if entry[1] else None

    def put_attr(self, path: str, attr: Attr | None, since: int | None = None) -> None:
        """What the server says of ``path``, asked at stamp ``since`` (dropped if overtaken)."""
        with self._lock:
            self._put_attr(path, attr, since)

    def _put_attr(self, path: str, attr: Attr | None, since: int | None) -> bool:
        if self._overtaken(parent_of(path)[0], since):
            return False
        if (self.dir_ttl_s if attr is not None and attr.is_dir else self.ttl_s) <= 0:
            self._attrs.pop(path, None)  # (what was cached before is no longer true either)
            return True
        self._trim(self._attrs)  # type: ignore[arg-type]
        self._attrs[path] = (self._clock(), attr.copy() if attr else None)
        return True

    def update_attr(self, path: str, attr: Attr | None) -> None:
        """A change the mount made itself: cached even if the entry had expired."""
        with self._lock:
            self._mark(parent_of(path)[0])
            self._put_attr(path, attr, None)
            self._into_listing(path, attr)

    def refresh_attr(self, path: str, attr: Attr, since: int) -> None:
        """What the server says of ``path`` now (an open's revalidation, asked at ``since``), into
        its directory's listing too."""
        with self._lock:
            if self._put_attr(path, attr, since):
                self._into_listing(path, attr)

    def _into_listing(self, path: str, attr: Attr | None) -> None:
        parent, name = parent_of(path)
        listing = self._listings.get(parent)
        if listing is not None and path != "/":
            if attr is None:
                listing[1].pop(name, None)
            else:
                listing[1][name] = attr.is_dir

    # -- listings -------------------------------------------------------------------------

    def listing(self, path: str) -> dict[str, bool] | None:
        with self._lock:
            entry = self._listings.get(path)
            if entry is None or not self._fresh(entry[0]):
                return None
            return dict(entry[1])

    def denies(self, path: str, name: str) -> bool:
        """Whether the fresh listing of directory ``path`` says that ``name`` is not in it."""
        with self._lock:
            entry = self._listings.get(path)
            return (entry is not None and self._fresh(entry[0]) and path not in self._partial
                    and name not in entry[1])

    def put_listing(self, path: str, names: dict[str, bool], denies: bool = True, since: int | None = None) -> None:
        """``denies=False``: a listing made to answer a lookup of one name, which serves readdir and
        the other names it holds, but whose absent names are looked up again: a name another
        mount created since shows at once (close-to-open), as before the listing was made.
        ``since``: the stamp taken before listing (dropped if overtaken)."""
        if self.ttl_s <= 0:
            return
        with self._lock:
            if self._overtaken(path, since):
                return
            self._trim(self._listings)  # type: ignore[arg-type]
            self._listings[path] = (self._clock(), dict(names))
            if denies:
                self._partial.discard(path)
            else:
                self._partial.add(path)

    def forget(self, path: str) -> None:
        """Drop what is known of ``path``, of everything under it, and its parent's listing."""
        with self._lock:
            self._mark(parent_of(path)[0])
            self._mark(path, tree=True)
            drop_tree(self._attrs, path)
            drop_tree(self._listings, path)
            self._listings.pop(parent_of(path)[0], None)
            self._partial.intersection_update(self._listings)
