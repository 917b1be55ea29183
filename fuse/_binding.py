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
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
from typing import Any

from . import libfuse

__all__ = ["mfusepy", "FUSE", "MAJOR", "MINOR", "tune_connection", "KILLPRIV", "RENAME_NOREPLACE"]


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


def tune_connection(conn: Any) -> None:
    """In ``init`` (libfuse 3): what the kernel and libfuse agree on for this mount."""
    # Setuid and setgid bits are cleared by the kernel, with a chmod, as libfuse 2 has it:
    # otherwise a write by another user, or a chown, would keep a setuid bit a local
    # filesystem clears.
    conn.want &= ~KILLPRIV


# libfuse's worker threads are not Python's: ctypes gives each callback from one a new Python
# thread state and deletes it on return (with its 16 KiB frame stack, an mmap and a munmap
# every call, and the interpreter's thread-list lock twice). A worker's first callback keeps
# its thread state for good instead (one more PyGILState_Ensure, never released). libfuse 3
# keeps its workers (no idle thread is ended unless asked); libfuse 2 ends idle ones beyond
# ten, whose kept states would then be lost: at most ``KEPT_STATES`` are kept, so that is bounded.
KEPT_STATES = 64
_ensure = ctypes.pythonapi.PyGILState_Ensure
_ensure.restype = ctypes.c_int
_kept = threading.local()
_kept_lock = threading.Lock()
_kept_count = 0


def _keep_thread_state() -> None:
    """Keep the calling thread's Python thread state after this callback (see above)."""
    global _kept_count
    _kept.done = True
    with _kept_lock:
        if _kept_count >= KEPT_STATES:
            return
        _kept_count += 1
    _ensure()


_Base: Any = mfusepy.FUSE


class FUSE(_Base):  # type: ignore[misc]
    """mfusepy's FUSE, with renameat2's flags kept (libfuse 3 passes them; 2 never does), and
    the Python thread state of each of libfuse's workers kept between its callbacks."""

    def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(_kept, "done", False):
            _keep_thread_state()
        return super()._wrapper(func, *args, **kwargs)

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
