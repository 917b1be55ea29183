"""Directories' mtime and ctime, which change on every create, unlink and rename in them, and
the attributes a chmod, chown or utimensat gives a directory.

A change is visible through the mount at once (an overlay on the directory's attributes)
and written to the directory's ``dir/`` object ``delay_s`` to 1.5 x ``delay_s`` after the
directory's first unwritten change (the background tick writes only changes that old, so
calls a moment apart are never split by it), so that creating
a thousand files in one directory rewrites its metadata once, not a thousand times, and tar's
utimensat, chown and chmod of a directory it extracted are one request. The root, and
directories that are only prefixes, have no object: their times stay in the overlay. A write
that fails stays pending, attributes and all, and is tried again at the next tick.

A directory made here is written the same way, but sooner: its object is created
``create_delay_s`` (the TTL) after the mkdir, with the times and attributes it got meanwhile,
so that tar's mkdir and its later utimensat, chown and chmod of the directory (once it has
filled it) are one PUT, not a PUT and a COPY. Until then the mount shows it from here, and
other clients see it only once something is stored in it; fsync of it or of a directory
above it, a rename of it and the unmount create it at once."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from .cache import drop_tree
from .metadata import Attr

__all__ = ["DirTimes"]

log = logging.getLogger("edgestore.fuse")

MIN_DELAY_S = 0.1


class DirTimes:
    def __init__(self, write: Callable[[str, int, Attr | None, bool], bool], delay_s: float = 1.0,
                 create_delay_s: float | None = None) -> None:
        """``write(path, ns, attr, create)`` stores the time (and ``attr``, if given, as the
        directory's attributes) in the directory's object, creating it with ``create``;
        False if it has none."""
        self._write = write
        self.delay_s = delay_s
        self.create_delay_s = delay_s if create_delay_s is None else min(create_delay_s, delay_s)
        self._pending: dict[str, int] = {}
        self._since: dict[str, float] = {}  # monotonic time of each pending path's first change
        self._attrs: dict[str, Attr] = {}  # attributes set here, not written yet
        self._kept: dict[str, int] = {}  # directories without an object of their own
        self._created: dict[str, float] = {}  # made here, object not written yet -> when it is due (monotonic)
        self._failing: set[str] = set()  # whose last write failed (warned once, until one succeeds)
        self._lock = threading.Lock()
        self.write_lock = threading.RLock()  # held while a directory's metadata is written
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="dirtimes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def touch(self, path: str, ns: int) -> None:
        with self._lock:
            self._pending[path] = max(ns, self._pending.get(path, 0))
            self._since.setdefault(path, time.monotonic())

    def defer(self, path: str, attr: Attr) -> None:
        """``attr`` becomes the attributes of directory ``path``, written with its next time."""
        with self._lock:
            self._attrs[path] = attr.copy()
            self._pending.setdefault(path, 0)
            self._since.setdefault(path, time.monotonic())

    def create(self, path: str, attr: Attr) -> None:
        """Directory ``path`` was just made with ``attr``: its object is written with its
        first pending change, ``create_delay_s`` from now at the latest."""
        now = time.monotonic()
        with self._lock:
            self._attrs[path] = attr.copy()
            self._pending.setdefault(path, 0)
            self._since.setdefault(path, now)
            self._created[path] = now + self.create_delay_s

    def created(self, path: str) -> Attr | None:
        """The attributes of directory ``path`` if it was made here and its object is not
        written yet (None otherwise)."""
        if not self._created:
            return None  # (every lookup asks: no lock while there are none)
        with self._lock:
            attr = self._attrs.get(path) if path in self._created else None
        return self.overlay(path, attr) if attr is not None else None

    def created_below(self, path: str) -> list[str]:
        """The directories under ``path`` made here whose objects are not written yet."""
        if not self._created:
            return []
        below = path.rstrip("/") + "/"
        with self._lock:
            return [p for p in self._created if p.startswith(below)]

    def overlay(self, path: str, attr: Attr) -> Attr:
        with self._lock:
            ns = max(self._pending.get(path, 0), self._kept.get(path, 0))
            if path in self._attrs:
                attr = self._attrs[path].copy()
        if ns > attr.mtime_ns:
            attr = attr.copy()
            attr.mtime_ns = ns
            attr.ctime_ns = max(attr.ctime_ns, ns)
        return attr

    def take(self, path: str) -> int | None:
        """Hand the time of ``path`` to a caller that writes the directory's metadata itself
        (holding ``write_lock``, so that no background write of an older state follows)."""
        with self._lock:
            times = [t for t in (self._pending.pop(path, None), self._kept.pop(path, None)) if t]
            if path not in self._created:  # (its attributes still show it until the caller defers anew)
                self._attrs.pop(path, None)
            self._since.pop(path, None)
        return max(times) if times else None

    def forget(self, path: str) -> None:
        with self._lock:
            drop_tree(self._pending, path)
            drop_tree(self._since, path)
            drop_tree(self._kept, path)
            drop_tree(self._attrs, path)
            drop_tree(self._created, path)
            self._failing = {p for p in self._failing if p != path and not p.startswith(path.rstrip("/") + "/")}

    def flush(self, under: str | None = None, changed_before: float | None = None) -> list[str]:
        """Write what is pending (of ``under`` and the directories below it, if given; first
        changed before the monotonic time ``changed_before``, or made here and due, if given);
        returns the directories whose write failed (still pending: tried again at the next flush)."""
        below = (under or "").rstrip("/") + "/"
        now = time.monotonic()
        with self._lock:
            paths = sorted(p for p in self._pending if (under is None or p == under or p.startswith(below))
                           and (changed_before is None or self._since.get(p, 0.0) <= changed_before
                                or self._created.get(p, math.inf) <= now))
        failed: list[str] = []
        for path in paths:
            with self.write_lock:
                with self._lock:
                    ns = self._pending.get(path)
                    attr = self._attrs.get(path)
                    create = path in self._created
                if ns is None:
                    continue  # taken by a metadata change meanwhile
                try:
                    stored = self._write(path, ns, attr, create)
                except Exception as exc:  # noqa: BLE001 - a failed metadata write is logged, never fatal
                    # Kept pending, with the mode, owner and times set here: dropping them would
                    # silently undo a chmod or chown that the mount has shown as done.
                    with self._lock:
                        first = path not in self._failing
                        self._failing.add(path)
                    if first:
                        log.warning("metadata of directory %s not stored (tried again): %s", path, exc)
                    failed.append(path)
                    continue
                with self._lock:
                    if path in self._failing:
                        self._failing.discard(path)
                        log.warning("metadata of directory %s stored after all", path)
                    self._created.pop(path, None)
                    if self._pending.get(path) == ns and self._attrs.get(path) is attr:  # (newer stays pending)
                        del self._pending[path]
                        self._attrs.pop(path, None)
                        self._since.pop(path, None)
                    if not stored and ns:  # no object of its own: the time stays in the overlay
                        self._kept[path] = max(ns, self._kept.get(path, 0))
        return failed

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(max(min(self.delay_s, self.create_delay_s) / 2, MIN_DELAY_S))
            self.flush(changed_before=time.monotonic() - self.delay_s)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if self.flush() and self.flush():  # (once more: the last chance before the unmount)
            log.error("unmounted with the metadata of directories not stored: %s", ", ".join(sorted(self._failing)))
