"""Placement keys: the Swift-style path of a name, and the partition it hashes to.

partition = top `part_power` bits of xxh3_64(cluster salt + UTF-8 path). The salt is per
cluster, so nobody outside can craft names that all land on one partition, and xxh3 is
several times faster than md5 on a Pi's ARM cores.
"""

from __future__ import annotations

import xxhash

__all__ = ["MAX_PART_POWER", "partition_for_key", "path_for"]

# 2**24 partitions is far beyond what a 300-node cluster needs and what a Pi can hold.
MAX_PART_POWER = 24

_intdigest = xxhash.xxh3_64_intdigest


def path_for(account: str, container: str | None = None, obj: str | None = None) -> str:
    """`/account`, `/account/container` or `/account/container/object`.

    An object needs its container, and no part may be empty: an empty part would make two
    different names share a path.
    """
    if not account:
        raise ValueError("account must be a non-empty string")
    if container is None:
        if obj is not None:
            raise ValueError("an object needs a container")
        return f"/{account}"
    if not container:
        raise ValueError("container must be a non-empty string")
    if obj is None:
        return f"/{account}/{container}"
    if not obj:
        raise ValueError("object must be a non-empty string")
    return f"/{account}/{container}/{obj}"


def partition_for_key(salt: bytes, key: bytes, part_power: int) -> int:
    """The partition (0 .. 2**part_power - 1) of an already encoded key."""
    return _intdigest(salt + key) >> (64 - part_power)
