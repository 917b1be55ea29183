"""The streaming tar reader of bulk extract, against archives Python's tarfile writes in each
format, compressed or not, fed in chunks of every awkward size."""

from __future__ import annotations

import asyncio
import bz2
import gzip
import io
import random
import tarfile
from collections.abc import AsyncIterator

import pytest

from edgestore.api.swift.tarstream import MAX_PIECE_BYTES, TarError, decompressed, read_members

LONG_DIR = "d" * 120
NAMES = ["a.txt", "dir/b.bin", f"{LONG_DIR}/{'n' * 90}.dat", "ünïcode/naïve ☃.txt", "empty", "x" * 250]


def _archive(fmt: int, with_pax: bool = False) -> bytes:
    out = io.BytesIO()
    rng = random.Random(fmt)
    global_pax = {"comment": "a global pax header"} if with_pax else None
    with tarfile.open(fileobj=out, mode="w", format=fmt, pax_headers=global_pax) as tar:
        folder = tarfile.TarInfo("dir")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for index, name in enumerate(NAMES):
            if fmt == tarfile.USTAR_FORMAT and (len(name) > 100 and "/" not in name or not name.isascii()):
                continue  # ustar cannot hold it
            data = rng.randbytes(0 if name == "empty" else 1 + index * 70_001)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if with_pax:
                info.pax_headers = {"SCHILY.xattr.user.meta.color": f"blue{index}"}
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link-to-a")
        link.type, link.linkname = tarfile.SYMTYPE, "a.txt"
        tar.addfile(link)
        hard = tarfile.TarInfo("hard-a")
        hard.type, hard.linkname = tarfile.LNKTYPE, "a.txt"
        tar.addfile(hard)
    return out.getvalue()


def _expected(archive: bytes) -> list[tuple[str, bool, bytes, dict[str, str]]]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        return [(m.name, m.isreg(), tar.extractfile(m).read() if m.isreg() else b"",  # type: ignore[union-attr]
                 dict(m.pax_headers)) for m in tar]


async def _chunks(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    pos, index = 0, 0
    while pos < len(data):
        size = sizes[index % len(sizes)]
        yield data[pos:pos + size]
        pos, index = pos + size, index + 1


def _read(data: bytes, kind: str, sizes: list[int]) -> list[tuple[str, bool, bytes, dict[str, str]]]:
    async def run() -> list[tuple[str, bool, bytes, dict[str, str]]]:
        found = []
        async for member, body in read_members(decompressed(_chunks(data, sizes), kind)):
            pieces = [piece async for piece in body.chunks()]
            assert all(len(piece) <= MAX_PIECE_BYTES for piece in pieces)
            found.append((member.name, member.regular, b"".join(pieces), member.pax))
        return found
    return asyncio.run(run())


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("kind", ["", "gz", "bz2"])
@pytest.mark.parametrize("sizes", [[1, 511, 513, 7], [65536], [10 ** 7]])
def test_every_member_and_its_bytes_come_out_as_tarfile_reads_them(fmt: int, kind: str, sizes: list[int]) -> None:
    archive = _archive(fmt, with_pax=fmt == tarfile.PAX_FORMAT)
    data = {"": archive, "gz": gzip.compress(archive), "bz2": bz2.compress(archive)}[kind]
    assert _read(data, kind, sizes) == _expected(archive)


def test_members_left_unread_are_skipped() -> None:
    archive = _archive(tarfile.GNU_FORMAT)

    async def names() -> list[str]:
        return [member.name async for member, _ in read_members(decompressed(_chunks(archive, [4096]), ""))]
    assert asyncio.run(names()) == [name for name, *_ in _expected(archive)]


def test_concatenated_gzip_streams_read_as_one() -> None:
    archive = _archive(tarfile.PAX_FORMAT)
    data = gzip.compress(archive[:10_000]) + gzip.compress(archive[10_000:])
    assert _read(data, "gz", [3000]) == _expected(archive)


def test_a_highly_compressed_member_comes_out_in_bounded_pieces() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 64 * MAX_PIECE_BYTES
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    [(name, _, body, _)] = _read(out.getvalue(), "gz", [1 << 20])
    assert name == "zeros" and body == bytes(64 * MAX_PIECE_BYTES)


@pytest.mark.parametrize("damage, kind", [
    ("cut in a member", ""), ("bad checksum", ""), ("not gzip", "gz"), ("cut gzip", "gz"),
    ("not bzip2", "bz2"), ("empty gzip", "gz"),
])
def test_damaged_archives_raise_tar_error(damage: str, kind: str) -> None:
    archive = _archive(tarfile.GNU_FORMAT)
    data = {
        "cut in a member": archive[:SECOND_FILE_DATA + 1000],
        "bad checksum": archive[:FIRST_FILE_HEADER + 10] + b"\x01" + archive[FIRST_FILE_HEADER + 11:],
        "not gzip": b"this is not compressed at all" * 40,
        "cut gzip": gzip.compress(archive)[:2000],
        "not bzip2": b"BZh9 but then nonsense" * 40,
        "empty gzip": b"",
    }[damage]
    with pytest.raises(TarError):
        _read(data, kind, [1000])


# Blocks: the directory's header, a.txt's header and its one block of data, dir/b.bin's header.
FIRST_FILE_HEADER = 512
SECOND_FILE_DATA = 4 * 512
