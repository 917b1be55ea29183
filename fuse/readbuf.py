"""Read replies handed to libfuse as buffers of its own (its ``read_buf`` operation), filled
from the open file's local copy by a pread in C.

With ``read``, every reply was a Python bytes object (allocated, filled by a pread, freed)
that mfusepy then copied into libfuse's buffer: two copies of each byte and an allocation in
Python. Here the pread fills a malloc'd buffer that libfuse sends as it is and frees after
replying (``fuse_free_buf``: the buffer, then the vector). The pread is done by the caller
with the open file's lock held, as before, so a read never sees bytes a fill or a hole punch
is changing (a reply of the file descriptor itself, read by libfuse after the lock is given
back, could)."""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

__all__ = ["pread_bytes", "pread_reply", "set_reply"]


# libfuse's struct fuse_buf and struct fuse_bufvec with its one inline buffer (fuse_common.h,
# the same in libfuse 2.9 and 3); flags 0: ``mem`` holds the bytes.
class _Buf(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("flags", ctypes.c_int), ("mem", ctypes.c_void_p),
                ("fd", ctypes.c_int), ("pos", ctypes.c_int64)]


class _BufVec(ctypes.Structure):
    _fields_ = [("count", ctypes.c_size_t), ("idx", ctypes.c_size_t), ("off", ctypes.c_size_t),
                ("buf", _Buf * 1)]


# Newer libfuse 3 releases append fields to struct fuse_buf (mem_size, for buffers libfuse
# allocated itself): the vector is allocated with room to spare, zeroed, so a libfuse newer
# than the one this layout was written from reads zeros inside the block, not past it.
_VEC_BYTES = ctypes.sizeof(_BufVec) + 64

# malloc and free keep the GIL (they are quick); the pread gives it up while it copies.
_held = ctypes.PyDLL(None, use_errno=True)
_malloc = _held.malloc
_malloc.argtypes, _malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
_free = _held.free
_free.argtypes, _free.restype = [ctypes.c_void_p], None
_pread = ctypes.CDLL(None, use_errno=True).pread
_pread.argtypes, _pread.restype = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64], ctypes.c_ssize_t


def pread_bytes(fd: int | None, length: int, offset: int) -> bytes:
    """``length`` bytes of ``fd`` from ``offset`` as bytes; zeros past its end (or for no fd)."""
    if fd is None:
        return bytes(length)
    data = os.pread(fd, length, offset)
    return data if len(data) == length else data.ljust(length, b"\0")


def pread_reply(fd: int | None, length: int, offset: int) -> int:
    """The same bytes in a malloc'd ``fuse_bufvec`` for libfuse, which frees it: its address."""
    mem: int = (_malloc(length) or 0) if length else 0
    if length and not mem:
        raise OSError(errno.ENOMEM, "no memory for a read reply")
    try:
        got = 0
        while fd is not None and got < length:
            n = _pread(fd, mem + got, length - got, offset + got)
            if n < 0:
                code = ctypes.get_errno()
                if code == errno.EINTR:
                    continue
                raise OSError(code, os.strerror(code))
            if n == 0:
                break  # the local file ends here: the rest reads as zeros, as a hole does
            got += n
        if got < length:
            ctypes.memset(mem + got, 0, length - got)
        vec: int = _malloc(_VEC_BYTES) or 0
        if not vec:
            raise OSError(errno.ENOMEM, "no memory for a read reply")
        ctypes.memset(vec, 0, _VEC_BYTES)
    except BaseException:
        _free(mem or None)
        raise
    reply = _BufVec.from_address(vec)
    reply.count, reply.idx, reply.off = 1, 0, 0
    buf = reply.buf[0]
    buf.size, buf.flags, buf.mem, buf.fd, buf.pos = length, 0, mem or None, -1, 0
    return vec


def set_reply(bufpp: Any, vec: int) -> None:
    """Hand ``vec`` (from ``pread_reply``) to libfuse through ``read_buf``'s ``struct fuse_bufvec **``."""
    ctypes.cast(bufpp, ctypes.POINTER(ctypes.c_void_p))[0] = vec

