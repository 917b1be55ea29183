"""A tar archive read as it streams in, member by member, for bulk extract.

Python's tarfile reads a stream only from a blocking file object; a request body here is
an async iterator of chunks, and a member's bytes must flow on into an object PUT without
being held. So this reads the formats tar writers produce — POSIX ustar, pax (per-file
and global extended headers) and GNU (long names) — itself, optionally through gzip or
bzip2. Memory holds one chunk, one header and a member's pax records (bounded), never a
member's data.
"""

from __future__ import annotations

import bz2
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TarError", "TarMember", "decompressed", "COMPRESSIONS", "read_members"]

BLOCK = 512
MAX_EXTENDED_BYTES = 1024 * 1024  # a pax header or GNU long name larger than this is refused
MAX_PIECE_BYTES = 256 * 1024      # the most one decompression step may produce
COMPRESSIONS = ("", "gz", "bz2")

# Type flags (POSIX and GNU).
_REGULAR = (b"0", b"\x00", b"7")
_PAX, _PAX_GLOBAL = b"x", b"g"
_GNU_LONG_NAME, _GNU_LONG_LINK, _GNU_SPARSE = b"L", b"K", b"S"
# Links, devices, FIFOs and directories: their size field, if any, stands for no data here.
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")
_DIRECTORY = b"5"


class TarError(Exception):
    """The archive is not one we can read (bad header, cut short, bad compression)."""


@dataclass
class TarMember:
    name: str
    size: int
    regular: bool  # a regular file (not a directory, link, device, ...)
    sparse: bool = False  # a GNU sparse file: its data is not its bytes as they are
    pax: dict[str, str] = field(default_factory=dict)  # its pax records, global ones included
    undecodable_name: bool = False  # the name was not UTF-8 (decoded with replacement)


def _new_decompressor(kind: str) -> Any:  # zlib's decompress object has no public type
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if kind == "gz" else bz2.BZ2Decompressor()


async def decompressed(chunks: AsyncIterator[bytes], kind: str) -> AsyncIterator[bytes]:
    """The bytes of ``chunks`` uncompressed (``kind`` "gz" or "bz2"; "" passes them through),
    in pieces of at most MAX_PIECE_BYTES whatever the compression ratio. Concatenated
    streams (as `cat a.gz b.gz` makes) are read one after the other."""
    if not kind:
        async for chunk in chunks:
            yield chunk
        return
    engine = _new_decompressor(kind)
    started = False
    try:
        async for data in chunks:
            started = started or bool(data)
            # zlib hands back the input its output cap left (unconsumed_tail); bzip2 keeps
            # it and says so (needs_input).
            while data or (isinstance(engine, bz2.BZ2Decompressor) and not engine.needs_input and not engine.eof):
                piece = engine.decompress(data, MAX_PIECE_BYTES)
                data = b"" if isinstance(engine, bz2.BZ2Decompressor) else engine.unconsumed_tail
                if piece:
                    yield piece
                if engine.eof:  # a stream ended: what follows it starts the next one
                    data = engine.unused_data + data
                    engine = _new_decompressor(kind)
    except (zlib.error, OSError, EOFError) as exc:
        raise TarError(f"bad {kind} data: {exc}") from None
    if not started:
        raise TarError(f"empty {kind} stream")


class _Reader:
    """Exact reads over a stream of chunks, keeping at most one chunk."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._held = memoryview(b"")

    async def _fill(self) -> bool:
        while not self._held:
            try:
                self._held = memoryview(await anext(self._chunks))
            except StopAsyncIteration:
                return False
        return True

    async def piece(self, most: int) -> memoryview:
        """Up to ``most`` bytes (at least one); TarError at the end of the stream."""
        if not await self._fill():
            raise TarError("unexpected end of data")
        piece, self._held = self._held[:most], self._held[most:]
        return piece

    async def exactly(self, count: int) -> bytes:
        parts: list[bytes] = []
        while count:
            piece = await self.piece(count)
            parts.append(bytes(piece))
            count -= len(piece)
        return b"".join(parts)

    async def skip(self, count: int) -> None:
        while count:
            count -= len(await self.piece(count))

    async def at_end(self) -> bool:
        return not await self._fill()


def _padded(size: int) -> int:
    return -size % BLOCK


def _number(field_bytes: bytes) -> int:
    """A numeric header field: octal text, or GNU's base-256 when its first bit is set."""
    if field_bytes and field_bytes[0] & 0x80:
        value = int.from_bytes(field_bytes, "big", signed=False) & ~(0x80 << (8 * (len(field_bytes) - 1)))
        if field_bytes[0] & 0x40:  # negative: not a size or anything we use
            raise TarError("negative number in header")
        return value
    text = field_bytes.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarError("invalid header") from None


def _check_sum(header: bytes) -> None:
    """The header's checksum: its bytes summed with the checksum field as spaces, as
    unsigned bytes (POSIX) or, as some old tars wrote it, signed ones."""
    wanted = _number(header[148:156])
    unsigned = 256 + sum(struct.unpack("148B8x356B", header))
    signed = 256 + sum(struct.unpack("148b8x356b", header))
    if wanted not in (unsigned, signed):
        raise TarError("bad checksum")


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    """Records "LENGTH KEY=VALUE\\n", LENGTH counting the whole record."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos:pos + 1] != b"\x00":
        space = data.find(b" ", pos)
        if space < 0:
            raise TarError("invalid pax header")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarError("invalid pax header") from None
        record = data[space + 1:pos + length]
        if length <= space - pos + 1 or pos + length > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise TarError("invalid pax header")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


async def _extended(reader: _Reader, size: int) -> bytes:
    if size > MAX_EXTENDED_BYTES:
        raise TarError(f"extended header of {size} bytes (at most {MAX_EXTENDED_BYTES})")
    data = await reader.exactly(size)
    await reader.skip(_padded(size))
    return data


class MemberData:
    """The bytes of the member just met; what its reader leaves unread is skipped."""

    def __init__(self, reader: _Reader, size: int) -> None:
        self._reader = reader
        self.left = size

    async def chunks(self) -> AsyncIterator[bytes]:
        while self.left:
            piece = await self._reader.piece(min(self.left, MAX_PIECE_BYTES))
            self.left -= len(piece)
            yield bytes(piece)

    async def finish(self, padding: int) -> None:
        await self._reader.skip(self.left + padding)
        self.left = 0


async def read_members(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[TarMember, MemberData]]:
    """Each member of the archive with its data, in archive order. Extended headers (pax,
    GNU long names) are folded into the member they describe. Whatever of a member's data
    the consumer does not read is skipped before the next member is read."""
    reader = _Reader(chunks)
    global_pax: dict[str, str] = {}
    pax: dict[str, str] = {}
    long_name: bytes | None = None
    while True:
        if await reader.at_end():
            return  # no end-of-archive blocks: accepted, as tar does
        header = await reader.exactly(BLOCK)
        if header == bytes(BLOCK):
            return  # the end-of-archive block
        _check_sum(header)
        kind = header[156:157]
        size = _number(header[124:136])
        if kind in (_PAX, _PAX_GLOBAL):
            records = _pax_records(await _extended(reader, size))
            (global_pax if kind == _PAX_GLOBAL else pax).update(records)
            continue
        if kind in (_GNU_LONG_NAME, _GNU_LONG_LINK):
            extended = await _extended(reader, size)
            if kind == _GNU_LONG_NAME:
                long_name = extended.split(b"\x00", 1)[0]
            continue
        merged = {**global_pax, **pax}
        raw_name = header[0:100].split(b"\x00", 1)[0]
        if header[257:263] == b"ustar\x00" and header[345] != 0:  # POSIX ustar: a name prefix
            raw_name = header[345:500].split(b"\x00", 1)[0] + b"/" + raw_name
        if long_name is not None:
            raw_name = long_name
        if "size" in merged:
            try:
                size = int(merged["size"])
            except ValueError:
                raise TarError("invalid pax size") from None
        try:
            name, undecodable = raw_name.decode("utf-8"), False
        except UnicodeDecodeError:
            name, undecodable = raw_name.decode("utf-8", "replace"), True
        if "path" in merged:
            name, undecodable = merged["path"], False
        if kind == _DIRECTORY:
            name = name.rstrip("/")  # tar writes "dir/"
        member = TarMember(name, size, kind in _REGULAR or kind == _GNU_SPARSE, kind == _GNU_SPARSE, merged,
                           undecodable)
        pax, long_name = {}, None
        stored = 0 if kind in _NO_DATA else size  # (unknown types carry data, as tar reads them)
        data = MemberData(reader, stored)
        yield member, data
        await data.finish(_padded(stored))
