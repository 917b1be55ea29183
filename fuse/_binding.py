"""The one import of mfusepy (fusepy's API over libfuse 2 or 3), with the libfuse that
``libfuse`` chose, and what the mount needs of libfuse 3 that mfusepy does not give.

libfuse 3 differs from 2 in ways a filesystem sees (libfuse's ChangeLog, 3.0.0):
- renameat2's flags reach the ``rename`` callback, which mfusepy drops: RENAME_EXCHANGE
  would become a plain rename that loses the target. ``FUSE.rename_fuse_3`` refuses it.
- Defaults it may ask the kernel for: ``handle_killpriv`` (the filesystem, not the kernel,
  clears setuid/setgid on write, truncate and chown: ours does not, so ``tune_connection``
  turns it off; libfuse 3.14 does not ask for it, some other versions do), ``atomic_o_trunc``
  (O_TRUNC reaches ``open``, which handles it: one upload at close instead of an empty PUT
  before the open), 1 MiB writes.
- ``fuse_invalidate_path`` (3.1): the kernel forgets the attributes it caches of a path, so
  that the kernel may cache them at all (``invalidate``; libfuse 2 has no way to name the inode).
- readdirplus: a directory's entries go to the kernel with their attributes (mfusepy passes
  the mode only), so that ``ls -l`` asks nothing more of each (``FUSE.readdir_fuse_3``).
- Its worker threads live as long as the mount (since 3.12, unless ``max_idle_threads`` is
  given), so each may keep a Python thread state (``FUSE._wrapper``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
import threading
from typing import Any

from . import libfuse

__all__ = ["mfusepy", "FUSE", "MAJOR", "MINOR", "tune_connection", "invalidate", "KILLPRIV", "RENAME_NOREPLACE"]


def _load() -> Any:
    if "mfusepy" in sys.modules or os.environ.get("FUSE_LIBRARY_PATH"):
        import mfusepy  # already loaded (its library cannot change now), or mfusepy's own choice

        return mfusepy
    os.environ["FUSE_LIBRARY_PATH"] = libfuse.library_path(os.environ.get(libfuse.LIBFUSE_ENV))
    try:
        import mfusepy
    finally:
        del os.environ["FUSE_LIBRARY_PATH"]  # not for the processes we start
    return mfusepy


mfusepy = _load()
MAJOR: int = mfusepy.fuse_version_major
MINOR: int = mfusepy.fuse_version_minor

RENAME_NOREPLACE = 1  # <linux/fs.h>; RENAME_EXCHANGE is 2, RENAME_WHITEOUT 4
# FUSE_CAP_HANDLE_KILLPRIV (on by default) and FUSE_CAP_HANDLE_KILLPRIV_V2 of libfuse 3's fuse_common.h
KILLPRIV = 1 << 20 | 1 << 28
READDIR_PLUS = 1  # fuse_readdir_flags: the kernel asks for attributes with the names
FILL_DIR_PLUS = 2  # fuse_fill_dir_flags: this entry comes with them


def tune_connection(conn: Any) -> None:
    """In ``init`` (libfuse 3): what the kernel and libfuse agree on for this mount."""
    # Setuid and setgid bits are cleared by the kernel, with a chmod, as libfuse 2 has it:
    # otherwise a write by another user, or a chown, would keep a setuid bit a local
    # filesystem clears.
    conn.want &= ~KILLPRIV


def invalidate(path: str) -> None:
    """From inside an operation (libfuse 3): the kernel drops the attributes (and pages) it
    caches of ``path``, and asks for them again when it next needs them. A path the kernel
    has not seen, or has forgotten, has nothing to drop."""
    context = mfusepy._libfuse.fuse_get_context()
    if context:
        _invalidate_path(ctypes.c_void_p(context.contents.fuse), path.encode("utf-8", "surrogateescape"))


if MAJOR == 3:
    _invalidate_path = mfusepy._libfuse.fuse_invalidate_path
    _invalidate_path.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    _invalidate_path.restype = ctypes.c_int

_Base: Any = mfusepy.FUSE


class FUSE(_Base):  # type: ignore[misc]
    """mfusepy's FUSE, with renameat2's flags kept (libfuse 3 passes them; 2 never does),
    readdirplus answered with each entry's attributes where the operations know them, and
    reads answered through read_buf (readbuf.py)."""

    def __init__(self, operations: Any, mountpoint: str, **kwargs: Any) -> None:
        # A thread libfuse started has no Python thread state: ctypes makes one for each call
        # and frees it after, and with it the frame stack's mmap (a munmap, page faults, TLB
        # shootdowns: about a fifth of the mount's CPU). Threads that never end keep theirs.
        self._keep_states = MAJOR == 3 and "max_idle_threads" not in kwargs
        self._kept: set[int] = set()  # the threads that keep theirs
        super().__init__(operations, mountpoint, **kwargs)

    def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        if self._keep_states and threading.get_ident() not in self._kept:
            # One more hold of this thread's state, never given back: the one ctypes gives
            # back after this call no longer frees it.
            ctypes.pythonapi.PyGILState_Ensure()
            self._kept.add(threading.get_ident())
        return super()._wrapper(func, *args, **kwargs)

    def create(self, path: bytes, mode: int, fip: Any) -> int:
        # (mfusepy's inspects the operation's signature on every call: a twentieth of untar's CPU)
        fi = fip.contents
        fi.fh = self.operations.create(path.decode(self.encoding, self.errors), mode, fi.flags)
        return 0

    def readdir_fuse_3(self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: Any, flags: int) -> int:
        # With offsets: libfuse 3 (before 3.17?) sends what a filesystem gives it with offsets
        # of 0 without the attributes, however given. Each request continues where the last
        # one stopped, from what the directory's first request listed.
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        entries: list[tuple[str, bool]] = self.operations.entries(decoded, fip.contents.fh, offset)
        plus = bool(flags & READDIR_PLUS) and decoded is not None
        st = mfusepy.c_stat()
        size = ctypes.sizeof(st)
        for index in range(offset, len(entries)):
            name, is_dir = entries[index]
            attrs = self.operations.entry_stat(decoded, name, is_dir) if plus and index >= 2 else None
            ctypes.memset(ctypes.byref(st), 0, size)
            if attrs is None:
                st.st_mode = stat.S_IFDIR if is_dir else 0  # (d_type: a listing cannot tell a symlink)
            else:
                mfusepy.set_st_attrs(st, attrs, use_ns=self.use_ns)
            if filler(buf, name.encode(self.encoding, self.errors), st, index + 1,
                      FILL_DIR_PLUS if attrs is not None else 0) != 0:
                break  # (the kernel's buffer is full: its next request starts at this entry)
        return 0

    def read_buf(self, path: bytes | None, bufpp: Any, size: int, offset: int, fip: Any) -> int:
        # (mfusepy's decodes the path, which libfuse leaves out for a file unlinked while open)
        fh = fip.contents if self.raw_fi else fip.contents.fh
        name = None if path is None else path.decode(self.encoding, self.errors)
        return int(self.operations.read_buf(name, bufpp, size, offset, fh))

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        if flags & ~RENAME_NOREPLACE:
            return -errno.EINVAL  # RENAME_EXCHANGE, RENAME_WHITEOUT: not offered (as with libfuse 2)
        # RENAME_NOREPLACE is the kernel's: it has looked ``new`` up and found nothing (else
        # EEXIST), and holds both directories locked until the rename returns.
        return int(self.operations.rename(old.decode(self.encoding, self.errors),
                                          new.decode(self.encoding, self.errors)) or 0)
