"""Which libfuse the mount loads: 3 when it is installed, else 2, unless told.

mfusepy loads a library when it is first imported and, when both are installed, takes libfuse 2
(it asks for ``fuse`` before ``fuse3``). libfuse 3 is what the mount wants: writes and reads
of up to 1 MiB per request (libfuse 2: 128 KiB, so eight times the Python callbacks) and
renameat2's flags. So the choice is made here, before that import (``_binding`` does it):
``EDGESTORE_LIBFUSE`` = ``auto`` (default), ``3`` or ``2``, which `edgestore mount --libfuse`
and ``-o libfuse=`` set. mfusepy's own ``FUSE_LIBRARY_PATH``, if set, wins over all of this.
Nothing here imports mfusepy, so options can be checked before a library is loaded.
"""

from __future__ import annotations

import os
from ctypes.util import find_library

__all__ = ["LIBFUSE_ENV", "CHOICES", "LibfuseError", "check_choice", "library_path", "select"]

LIBFUSE_ENV = "EDGESTORE_LIBFUSE"
CHOICES = ("auto", "3", "2")
# ctypes' names for them: libfuse3.so.3 and libfuse.so.2.
_NAMES = {"3": "fuse3", "2": "fuse"}
_PACKAGES = {"3": "libfuse3-3 (apt-get install fuse3)", "2": "libfuse2 (apt-get install libfuse2)"}


class LibfuseError(Exception):
    """The libfuse asked for cannot be had: a one-line reason for the user."""


def check_choice(choice: str | None) -> str:
    """``choice`` as one of CHOICES (None and "" mean auto)."""
    value = (choice or "auto").strip().lower()
    if value not in CHOICES:
        raise LibfuseError(f"libfuse must be one of {', '.join(CHOICES)}, not {choice!r}")
    return value


def library_path(choice: str | None) -> str:
    """The library to load for ``choice``: what ctypes finds for it (``libfuse3.so.3``)."""
    value = check_choice(choice)
    majors = ("3", "2") if value == "auto" else (value,)
    for major in majors:
        found = find_library(_NAMES[major])
        if found:
            return found
    wanted = " or ".join(_PACKAGES[m] for m in majors)
    raise LibfuseError(f"libfuse {' or '.join(majors)} is not installed: install {wanted}")


def select(choice: str | None) -> str:
    """Make ``choice`` the one the mount loads in this process and the processes it starts
    (the daemon is forked, `edgestore mount` children inherit the environment); checked now,
    so that a missing library is a one-line error, not a failed import. Returns the library."""
    value = check_choice(choice)
    path = library_path(value)
    os.environ[LIBFUSE_ENV] = value
    return path
