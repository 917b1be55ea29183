"""What a block id is: how one is made, and how bytes are checked against it.

A block id names a block file and carries a checksum of its bytes, so whoever holds the
file (a read, scrub, repair, a peer receiving it) can check it with nothing but the name:

- `<32 hex random>-<32 hex>-p16`, "pieced": what this version writes. The block is cut
  into pieces of 2^16 bytes (the number after `p`); the id's checksum is the xxh3-128 of
  the pieces' own xxh3-128 digests, one after the other. The block's file keeps those
  digests after the bytes (store/blocks.py), so a read of any range checks just the
  pieces it covers, before it sends them: a small ranged read (the mount's random reads)
  reads one piece rather than the whole block, a large block streams through a little
  memory, and a rotten piece is found before a byte of it leaves the node.
- `<32 hex random>-<32 hex xxh3-128 of the bytes>`, "whole": what versions up to
  2026-11-28 wrote.
- `<64 hex BLAKE2b-256 of the bytes>`: the content address still older versions wrote.

The older forms stay readable, verifiable, repairable and collectable (their files hold
the bytes alone). In every form the random half makes each id unique and spreads ids
evenly over the ring (placement is by `/.blocks/<id>`) and over the fan-out directories.
xxh3 runs at tens of GB/s where BLAKE2b manages a few hundred MB/s (far less on a Pi
without crypto extensions). The checksum is not a MAC: it detects accident, not a forger
(docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from typing import Protocol

import xxhash

__all__ = ["BLOCK_ID", "BlockBytes", "DIGEST_BYTES", "PIECE_BYTES", "new_block_id", "whole_block_id", "legacy_block_id",
           "verify", "verify_async", "BlockVerifier", "is_legacy", "is_pieced", "piece_size", "piece_digests",
           "digests_size", "covering_pieces", "digests_match", "pieces_match"]

BLOCK_ID = re.compile(r"^(?:[0-9a-f]{32}-[0-9a-f]{32}(?:-p(?:1[2-9]|2[0-4]))?|[0-9a-f]{64})$")

# A block's bytes as they are held: a body's block is filled in place (a bytearray).
BlockBytes = bytes | bytearray | memoryview

_RANDOM_HEX = 32
_CHECKSUM_END = _RANDOM_HEX + 1 + 32
PIECE_SHIFT = 16
PIECE_BYTES = 1 << PIECE_SHIFT   # 64 KiB: a random 4 KiB read reads and checks this much
DIGEST_BYTES = 16                # one xxh3-128 digest per piece


class _Hasher(Protocol):
    def update(self, data: BlockBytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def new_block_id(data: BlockBytes) -> str:
    """A fresh (pieced) id for a block holding `data`."""
    checksum = xxhash.xxh3_128_hexdigest(piece_digests(data, PIECE_BYTES))
    return f"{secrets.token_hex(_RANDOM_HEX // 2)}-{checksum}-p{PIECE_SHIFT}"


def whole_block_id(data: BlockBytes) -> str:
    """The id versions up to 2026-11-28 gave a block (tests write such blocks to check they
    stay valid; nothing in the store makes them any more)."""
    return f"{secrets.token_hex(_RANDOM_HEX // 2)}-{xxhash.xxh3_128_hexdigest(data)}"


def legacy_block_id(data: BlockBytes) -> str:
    """The id still older versions gave these bytes (likewise for tests)."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def is_legacy(block: str) -> bool:
    """A BLAKE2b content address, written by an older version (slow to check)."""
    return len(block) == 64


def is_pieced(block: str) -> bool:
    """Does this block's file keep its pieces' digests after its bytes?"""
    return len(block) > _CHECKSUM_END


def piece_size(block: str) -> int:
    """The piece size of a pieced block."""
    return 1 << int(block[_CHECKSUM_END + 2:])


def piece_digests(data: BlockBytes, piece: int) -> bytes:
    """The xxh3-128 digests of `data`'s pieces, one after the other (the last piece may
    be short)."""
    view = memoryview(data)
    return b"".join([xxhash.xxh3_128_digest(view[at:at + piece]) for at in range(0, len(view), piece)])


def digests_size(piece: int, size: int) -> int:
    """The bytes of the piece digests of a block of `size` bytes."""
    return -(-size // piece) * DIGEST_BYTES


def covering_pieces(piece: int, size: int, first: int, last: int) -> tuple[int, int]:
    """(start, end): the span of whole pieces that holds bytes first..last (inclusive) of a
    block of `size` bytes, clipped to the block."""
    return first // piece * piece, min(size, (last // piece + 1) * piece)


def digests_match(block: str, digests: bytes) -> bool:
    """Are these the piece digests a pieced block's id was made from?"""
    return xxhash.xxh3_128_hexdigest(digests) == block[_RANDOM_HEX + 1:_CHECKSUM_END]


def pieces_match(block: str, digests: bytes, start: int, data: BlockBytes) -> bool:
    """Are `digests` a pieced block's (checked against its id), and `data` its pieces from
    offset `start` (a piece boundary) on?"""
    piece = piece_size(block)
    wanted = digests[digests_size(piece, start):digests_size(piece, start + len(data))]
    return digests_match(block, digests) and piece_digests(data, piece) == wanted


def verify(block: str, data: BlockBytes) -> bool:
    """Are these the bytes of `block`? (`block` must match BLOCK_ID.)"""
    if is_pieced(block):
        return digests_match(block, piece_digests(data, piece_size(block)))
    hasher, expected = _whole_hasher(block)
    hasher.update(data)
    return hasher.hexdigest() == expected


async def verify_async(block: str, data: BlockBytes) -> bool:
    """`verify` from the event loop: xxh3 of a block takes microseconds, less than a
    thread hop, so it runs in place; a legacy block's BLAKE2b runs in a thread."""
    if is_legacy(block):
        return await asyncio.to_thread(verify, block, data)
    return verify(block, data)


def _whole_hasher(block: str) -> tuple[_Hasher, str]:
    """A hasher for all the bytes of an older-form block, and the digest they must have."""
    if is_legacy(block):
        return hashlib.blake2b(digest_size=32), block  # legacy_block_id, streamed
    return xxhash.xxh3_128(), block[_RANDOM_HEX + 1:]


class BlockVerifier:
    """Checks a block's bytes as they stream past, piece by piece (a peer's upload); for a
    pieced block it also gathers the piece digests its file keeps (`digests`)."""

    def __init__(self, block: str) -> None:
        self._block = block
        self._pieced = is_pieced(block)
        if self._pieced:
            self._piece = piece_size(block)
            self._piece_hasher = xxhash.xxh3_128()
            self._filled = 0          # bytes of the current piece seen so far
            self._digests: list[bytes] = []
        else:
            self._hasher, self._expected = _whole_hasher(block)

    def update(self, data: BlockBytes) -> None:
        if not self._pieced:
            self._hasher.update(data)
            return
        view = memoryview(data)
        while view:
            take = min(self._piece - self._filled, len(view))
            self._piece_hasher.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self._piece:
                self._end_piece()

    def _end_piece(self) -> None:
        self._digests.append(self._piece_hasher.digest())
        self._piece_hasher.reset()
        self._filled = 0

    def digests(self) -> bytes:
        """The piece digests of all the bytes seen (b"" for an older-form block); call after
        the last update (again too: the upload writes them, then `matches` checks them)."""
        if self._pieced and self._filled:
            self._end_piece()
        return b"".join(self._digests) if self._pieced else b""

    def matches(self) -> bool:
        """Call once, after the last update."""
        if self._pieced:
            return digests_match(self._block, self.digests())
        return self._hasher.hexdigest() == self._expected
