"""S3 additional checksums: CRC32, CRC32C, SHA1, SHA256 and CRC64NVME.

S3 clients may send one ``x-amz-checksum-<algorithm>`` value per object, either as a
header (known before the body) or as a trailer after an aws-chunked body (see
``chunked.py``). The server computes the same checksum while the body streams and
refuses the upload with ``BadDigest`` when they differ, before anything is committed.

Implementations, chosen for speed on a Raspberry Pi:

- crc32: ``zlib.crc32`` (stdlib, table/SIMD accelerated);
- sha1, sha256: ``hashlib``;
- crc32c, crc64nvme: ``awscrt.checksums`` when installed -- the AWS Common Runtime that
  botocore itself uses to compute these two, hardware accelerated on aarch64 (ARMv8 CRC
  and PMULL) and x86-64, so our values are bit-for-bit what the clients send. Without
  it a pure-Python table-driven CRC is used: correct but about a thousand times slower
  (a few MB/s), good for tests and emergencies, not for serving uploads.

Digests are the big-endian bytes of the CRC (4 bytes for the CRC32s, 8 for CRC64NVME),
base64-encoded on the wire, as the AWS SDKs do. Hashing a large body is CPU work: callers
on the event loop feed it in pieces of at most a few hundred KiB (``chunked.py`` does).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import importlib
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from edgestore.api.s3.errors import BadDigest, InvalidRequest
from edgestore.api.s3.errors import NotImplemented as S3NotImplemented

__all__ = [
    "ALGORITHMS",
    "check_small_body",
    "have_fast_crc",
    "Checksum",
    "RequestedChecksum",
    "decode_expected",
    "digest_size",
    "header_name",
    "new_checksum",
    "parse_requested",
    "verify",
]

ALGORITHMS: tuple[str, ...] = ("crc32", "crc32c", "sha1", "sha256", "crc64nvme")

_DIGEST_SIZE: dict[str, int] = {"crc32": 4, "crc32c": 4, "sha1": 20, "sha256": 32, "crc64nvme": 8}

# Headers that start with the checksum prefix but carry no checksum value.
_NOT_VALUE_HEADERS = frozenset(
    {"x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode"}
)
_PREFIX = "x-amz-checksum-"
# Algorithms newer AWS SDKs know that we do not compute: refused rather than ignored, so
# a client never believes a checksum was verified when it was not.
_UNSUPPORTED = frozenset({"sha512", "xxhash64", "xxhash3", "xxhash128"})


class Checksum(Protocol):
    """A running checksum: feed pieces with ``update``, read the result at the end."""

    name: str

    def update(self, data: bytes | bytearray | memoryview) -> None: ...

    def digest(self) -> bytes: ...

    def b64(self) -> str: ...


# --- CRC kernels --------------------------------------------------------------------------


def _reflected_table(poly: int) -> tuple[int, ...]:
    """Byte table for a reflected (LSB-first) CRC with the given reversed polynomial."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def _make_pure_crc(poly: int, width: int) -> Callable[[bytes | bytearray | memoryview, int], int]:
    """A pure-Python reflected CRC with init and final xor all-ones (CRC-32C, CRC-64/NVME).

    Same calling convention as ``awscrt.checksums``: ``f(data, previous) -> crc`` where
    ``previous`` is the finished CRC of the data so far (0 to start).
    """
    table = _reflected_table(poly)
    mask = (1 << width) - 1

    def crc(data: bytes | bytearray | memoryview, previous: int = 0) -> int:
        value = previous ^ mask
        for byte in bytes(data):
            value = table[(value ^ byte) & 0xFF] ^ (value >> 8)
        return value ^ mask

    return crc


_pure_crc32c = _make_pure_crc(0x82F63B78, 32)  # Castagnoli, reversed
_pure_crc64nvme = _make_pure_crc(0x9A6C9329AC4BC9B5, 64)  # CRC-64/NVME (0xAD93D23594C93659), reversed

_CrcFunc = Callable[[bytes | bytearray | memoryview, int], int]

@functools.cache
def _crc_kernels() -> tuple[_CrcFunc, _CrcFunc, bool]:
    """(crc32c, crc64nvme, fast?): awscrt's, loaded on first use rather than at start-up
    (it costs a node ~6 MiB of RSS, and most clients send CRC32), else the pure ones."""
    try:  # awscrt ships no type information: import it as a plain module
        crt = importlib.import_module("awscrt.checksums")
        return crt.crc32c, crt.crc64nvme, True
    except ImportError:  # pragma: no cover - depends on the installation; the fallback is tested directly
        return _pure_crc32c, _pure_crc64nvme, False


def have_fast_crc() -> bool:
    return _crc_kernels()[2]


def _zlib_crc32(data: bytes | bytearray | memoryview, previous: int = 0) -> int:
    return zlib.crc32(data, previous)


class _Crc:
    """A running CRC over an ``f(data, previous)`` kernel, digest big-endian."""

    __slots__ = ("_func", "_size", "_value", "name")

    def __init__(self, name: str, func: _CrcFunc, size_bytes: int) -> None:
        self.name = name
        self._func = func
        self._size = size_bytes
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self._value = self._func(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


class _Hash:
    """A running hashlib digest with the ``Checksum`` interface."""

    __slots__ = ("_hash", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._hash = hashlib.new(name)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


def new_checksum(name: str) -> Checksum:
    """A fresh running checksum for ``name`` (one of ``ALGORITHMS``, case-insensitive).

    Raises ``ValueError`` for an unknown name: by the time a checksum is built the name has
    been validated by ``parse_requested``, so an unknown one here is a programming error.
    """
    alg = name.lower()
    if alg == "crc32":
        return _Crc(alg, _zlib_crc32, 4)
    if alg == "crc32c":
        return _Crc(alg, _crc_kernels()[0], 4)
    if alg == "crc64nvme":
        return _Crc(alg, _crc_kernels()[1], 8)
    if alg in ("sha1", "sha256"):
        return _Hash(alg)
    raise ValueError(f"unknown checksum algorithm {name!r}")


def header_name(name: str) -> str:
    """The header (or trailer) that carries a checksum: ``crc32`` -> ``x-amz-checksum-crc32``."""
    return _PREFIX + name.lower()


def digest_size(name: str) -> int:
    """Length in bytes of the raw digest of ``name``."""
    return _DIGEST_SIZE[name.lower()]


def decode_expected(name: str, value_b64: str) -> bytes:
    """Decode a client-supplied checksum value, refusing anything malformed.

    Raises ``InvalidRequest`` with AWS's message ("Value for x-amz-checksum-crc32 header is
    invalid.") for bad base64 or a digest of the wrong length, so a header can be checked
    before the body is read.
    """
    alg = name.lower()
    message = f"Value for {header_name(alg)} header is invalid."
    try:
        raw = base64.b64decode(value_b64.strip().encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise InvalidRequest(message) from exc
    if alg not in _DIGEST_SIZE or len(raw) != _DIGEST_SIZE[alg]:
        raise InvalidRequest(message)
    return raw


def verify(name: str, expected_b64: str, actual: bytes | Checksum) -> None:
    """Check a client's checksum against what was computed over the body.

    ``actual`` is the raw digest or the running ``Checksum`` itself. Raises
    ``InvalidRequest`` for a malformed value and ``BadDigest`` for a mismatch.
    """
    expected = decode_expected(name, expected_b64)
    got = actual if isinstance(actual, bytes) else actual.digest()
    if expected != got:
        raise BadDigest(f"The {name.upper()} you specified did not match the calculated checksum.")


@dataclass(frozen=True)
class RequestedChecksum:
    """The checksum a request declares: its algorithm, and the value if sent as a header.

    ``location`` is ``"header"`` (``expected_b64`` set, known before the body) or
    ``"trailer"`` (the value arrives after an aws-chunked body, in the decoder's
    ``trailers`` under ``header_name(algorithm)``).
    """

    algorithm: str
    location: Literal["header", "trailer"]
    expected_b64: str | None = None

    @property
    def header(self) -> str:
        return header_name(self.algorithm)


def _values(headers: Mapping[str, str], name: str) -> list[str]:
    """All values of a header, case-insensitively, for plain dicts and multidicts alike."""
    return [v for k, v in headers.items() if k.lower() == name]


def _check_supported(alg: str) -> None:
    if alg in _UNSUPPORTED:
        raise S3NotImplemented(f"The {alg.upper()} checksum algorithm is not supported.")


def parse_requested(headers: Mapping[str, str]) -> RequestedChecksum | None:
    """Find the one checksum a request declares, validating it as S3 does.

    Sources, as the AWS SDKs send them: an ``x-amz-checksum-<alg>`` header with the value;
    or ``x-amz-trailer: x-amz-checksum-<alg>`` for a value sent after an aws-chunked body;
    ``x-amz-sdk-checksum-algorithm`` names the algorithm and must agree with either.
    Returns None when no checksum is declared. Raises ``InvalidRequest`` for more than one
    checksum, an unknown algorithm, a malformed header value, or an algorithm header with
    no matching checksum.
    """
    found: list[tuple[str, str]] = []
    for key, value in headers.items():
        lk = key.lower()
        if lk.startswith(_PREFIX) and lk not in _NOT_VALUE_HEADERS:
            alg = lk[len(_PREFIX):]
            _check_supported(alg)
            if alg in _DIGEST_SIZE:
                found.append((alg, value))
    trailer_algs: list[str] = []
    for value in _values(headers, "x-amz-trailer"):
        for item in value.split(","):
            name = item.strip().lower()
            if not name:
                continue
            if name.startswith(_PREFIX):
                _check_supported(name[len(_PREFIX):])
            if not name.startswith(_PREFIX) or name[len(_PREFIX):] not in _DIGEST_SIZE:
                raise InvalidRequest("The value specified in the x-amz-trailer header is not supported")
            trailer_algs.append(name[len(_PREFIX):])
    if len(found) + len(trailer_algs) > 1:
        raise InvalidRequest(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    sdk_values = _values(headers, "x-amz-sdk-checksum-algorithm")
    sdk_alg = sdk_values[0].strip().lower() if sdk_values else None
    if sdk_alg is not None:
        _check_supported(sdk_alg)
    if sdk_alg is not None and (len(sdk_values) > 1 or sdk_alg not in _DIGEST_SIZE):
        raise InvalidRequest("Value for x-amz-sdk-checksum-algorithm header is invalid.")
    result: RequestedChecksum | None = None
    if found:
        alg, value = found[0]
        decode_expected(alg, value)
        result = RequestedChecksum(alg, "header", value.strip())
    elif trailer_algs:
        result = RequestedChecksum(trailer_algs[0], "trailer")
    if sdk_alg is not None and (result is None or result.algorithm != sdk_alg):
        raise InvalidRequest(
            "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* "
            "or x-amz-trailer headers were found."
        )
    return result


def check_small_body(headers: Mapping[str, str], body: bytes) -> None:
    """A configuration body (DeleteObjects, PutBucketCors...), which S3 wants protected by
    Content-MD5 or a checksum header: verify whichever came (BadDigest on a mismatch)."""
    content_md5 = headers.get("Content-MD5")
    if content_md5 is not None and base64.b64encode(hashlib.md5(body).digest()).decode() != content_md5.strip():
        raise BadDigest()
    requested = parse_requested(headers)
    if requested is not None and requested.location == "header" and requested.expected_b64:
        checksum = new_checksum(requested.algorithm)
        checksum.update(body)
        verify(requested.algorithm, requested.expected_b64, checksum)
