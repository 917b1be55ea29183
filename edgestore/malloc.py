"""Keep a node's memory from growing on block buffers the allocator keeps for itself.

glibc gives each thread that allocates its own heap arena (up to 8 per core), and freed
space stays in the arena it came from. Block bytes are allocated on the event loop and
in the worker threads that hash and write them, so under 8 concurrent 64 MiB PUTs every
worker's arena held its own spare megabytes: a node peaked near 100 MiB resident. Two
arenas are enough for one event loop and a few workers, and share their free space.
(A fixed mmap threshold returns block buffers too, but its page faults cost ~20% more
CPU per byte written.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["limit_malloc_arenas"]

_M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h
ARENAS = 2

log = logging.getLogger(__name__)


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's arenas; call before threads start. False (nothing changed) on another C library."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_ARENA_MAX, arenas))
    if not ok:
        log.info("mallopt(M_ARENA_MAX) refused: block buffers may stay resident after use")
    return ok
