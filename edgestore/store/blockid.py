"""What a block id is: how one is made, and how bytes are checked against it.

A block id names a block file and carries its checksum, so whoever holds the file (a
read, scrub, repair, a peer receiving it) can check it with nothing but the name:

- `<32 hex random>-<32 hex xxh3-128 of the bytes>`: what this version writes. The
  random half makes every id unique and spreads ids evenly over the ring (placement is
  by `/.blocks/<id>`) and over the fan-out directories; the checksum half catches a
  rotten sector or bytes damaged in transit. xxh3 runs at tens of GB/s where BLAKE2b
  manages a few hundred MB/s (far less on a Pi without crypto extensions), and a block
  used to be hashed five times (named, received by three replicas, read).
- `<64 hex BLAKE2b-256 of the bytes>`: the content address older versions wrote. Those
  blocks stay readable, verifiable, repairable and collectable.

The checksum is not a MAC: it detects accident, not a forger (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from typing import Protocol

import xxhash

__all__ = ["BLOCK_ID", "new_block_id", "legacy_block_id", "verify", "verify_async", "BlockVerifier", "is_legacy"]

BLOCK_ID = re.compile(r"^(?:[0-9a-f]{32}-[0-9a-f]{32}|[0-9a-f]{64})$")

_RANDOM_HEX = 32


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


def new_block_id(data: bytes | memoryview) -> str:
    """A fresh id for a block holding `data`."""
    return f"{secrets.token_hex(_RANDOM_HEX // 2)}-{xxhash.xxh3_128_hexdigest(data)}"


def legacy_block_id(data: bytes | memoryview) -> str:
    """The id older versions gave these bytes (tests write such blocks to check they stay
    valid; nothing in the store makes them any more)."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def is_legacy(block: str) -> bool:
    """A BLAKE2b content address, written by an older version (slow to check)."""
    return len(block) == 64


def _hasher(block: str) -> tuple[_Hasher, str]:
    """A hasher for the bytes of `block`, and the digest they must have."""
    if is_legacy(block):
        return hashlib.blake2b(digest_size=32), block  # legacy_block_id, streamed
    return xxhash.xxh3_128(), block[_RANDOM_HEX + 1:]


def verify(block: str, data: bytes | memoryview) -> bool:
    """Are these the bytes of `block`? (`block` must match BLOCK_ID.)"""
    hasher, expected = _hasher(block)
    hasher.update(data)
    return hasher.hexdigest() == expected


async def verify_async(block: str, data: bytes | memoryview) -> bool:
    """`verify` from the event loop: xxh3 of a block takes microseconds, less than a
    thread hop, so it runs in place; a legacy block's BLAKE2b runs in a thread."""
    if is_legacy(block):
        return await asyncio.to_thread(verify, block, data)
    return verify(block, data)


class BlockVerifier:
    """Checks a block's bytes as they stream past, piece by piece (a peer's upload)."""

    def __init__(self, block: str) -> None:
        self._hasher, self._expected = _hasher(block)

    def update(self, piece: bytes | memoryview) -> None:
        self._hasher.update(piece)

    def matches(self) -> bool:
        return self._hasher.hexdigest() == self._expected
