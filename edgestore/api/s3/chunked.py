"""aws-chunked request bodies: decode them, verify chunk and trailer signatures, read trailers.

A body sent with ``x-amz-content-sha256: STREAMING-...`` is framed as a series of chunks::

    signed:    <hex-size>;chunk-signature=<64 hex>\\r\\n<data>\\r\\n ... 0;chunk-signature=<sig>\\r\\n
    unsigned:  <hex-size>\\r\\n<data>\\r\\n ... 0\\r\\n

followed by the trailer section: ``name:value\\r\\n`` lines (for the signed-trailer variant
the last is ``x-amz-trailer-signature:<64 hex>``) and an empty line. Each chunk signature
is an HMAC, with the request's signing key, over::

    AWS4-HMAC-SHA256-PAYLOAD\\n<amz-date>\\n<scope>\\n<previous signature>\\n<sha256("")>\\n<sha256(data)>

chained from the seed (the request signature); the trailer signature is over
``AWS4-HMAC-SHA256-TRAILER\\n<amz-date>\\n<scope>\\n<final chunk signature>\\n<sha256(trailers)>``
where the trailers are ``name:value\\n`` lines, names lower-cased, sorted.

Contract with the caller -- data before verdict: ``AwsChunkedDecoder.chunks()`` yields
decoded data in pieces of at most ``piece_bytes`` as soon as they arrive, so a chunk of
several MiB is never held in memory. A chunk's signature can only be checked once the
whole chunk has been read, so pieces of a chunk are yielded *before* its signature is
known to be good. Every failure (bad signature, bad framing, truncation, wrong length,
bad trailer) raises an ``S3Error`` before the iterator finishes, and the caller must
treat the data as unauthenticated until the ``async for`` loop ends without an
exception: store it provisionally, commit (make it visible, acknowledge) only then.

Errors: framing that is not aws-chunked -> ``InvalidRequest``; a body that ends early or
whose decoded size differs from ``x-amz-decoded-content-length`` -> ``IncompleteBody``;
a bad chunk or trailer signature -> ``SignatureDoesNotMatch``; a non-final signed chunk
under 8 KiB -> ``InvalidChunkSizeError``. Exceptions raised by the underlying reader
(connection reset) propagate unchanged. Checksum trailers are exposed, not checked here:
see ``checksums.verify``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from edgestore.api.s3.errors import (
    IncompleteBody,
    InvalidArgument,
    InvalidChunkSizeError,
    InvalidRequest,
    MissingContentLength,
    SignatureDoesNotMatch,
)
from edgestore.api.s3.sigv4 import EMPTY_SHA256, AuthResult, PayloadMode, hmac_sha256_hex

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_TRAILERS",
    "MIN_CHUNK_SIZE_BYTES",
    "PIECE_BYTES",
    "AwsChunkedDecoder",
    "ByteReader",
    "canonical_trailers",
    "chunk_signature",
    "trailer_signature",
]

MIN_CHUNK_SIZE_BYTES = 8192  # AWS: every signed chunk but the last is at least 8 KiB
MAX_LINE_BYTES = 4096  # a chunk header or trailer line, CRLF included
MAX_TRAILERS = 16
PIECE_BYTES = 256 * 1024  # largest piece yielded; also the largest single read of chunk data
_READ_BYTES = 64 * 1024  # read size while looking for a line (the surplus is kept as data)

_SIGNED_HEADER_RE = re.compile(rb"([0-9a-fA-F]{1,16});chunk-signature=([0-9a-fA-F]{64})")
_UNSIGNED_HEADER_RE = re.compile(rb"([0-9a-fA-F]{1,16})(?:;[\x20-\x7e]*)?")
_TRAILER_SIGNATURE = "x-amz-trailer-signature"


class ByteReader(Protocol):
    """What the decoder needs of a body stream (aiohttp's ``StreamReader`` has it)."""

    async def read(self, n: int = -1) -> bytes: ...


def chunk_signature(signing_key: bytes, amz_date: str, scope: str, previous: str, data_sha256_hex: str) -> str:
    """The signature of one chunk, given the previous signature and the chunk's sha256."""
    sts = f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{data_sha256_hex}"
    return hmac_sha256_hex(signing_key, sts)


def canonical_trailers(trailers: Sequence[tuple[str, str]]) -> str:
    """``name:value\\n`` per trailer, names lower-cased, values trimmed, sorted by name."""
    return "".join(f"{name.lower()}:{value.strip()}\n" for name, value in sorted(trailers, key=lambda t: t[0].lower()))


def trailer_signature(signing_key: bytes, amz_date: str, scope: str, previous: str, canonical: str) -> str:
    """The ``x-amz-trailer-signature`` over canonical trailers, chained from the final chunk."""
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return hmac_sha256_hex(signing_key, f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous}\n{digest}")


def _malformed(what: str) -> InvalidRequest:
    return InvalidRequest(f"Malformed aws-chunked body: {what}.")


def _truncated() -> IncompleteBody:
    return IncompleteBody("The request body terminated unexpectedly.")


class AwsChunkedDecoder:
    """Decode one aws-chunked body; iterate ``chunks()`` (or the decoder) once.

    ``decoded_length`` is ``x-amz-decoded-content-length`` (None when the client did not
    know it: then the caller bounds the object size itself); ``trailer_names`` the names
    announced in ``x-amz-trailer``, each of which must arrive, and no other. After a
    complete iteration ``trailers`` holds the verified trailers (lower-case names) and
    ``decoded_bytes`` the payload size. See the module docstring for the contract.
    """

    def __init__(
        self,
        reader: ByteReader,
        auth: AuthResult,
        decoded_length: int | None,
        trailer_names: Sequence[str] = (),
        *,
        piece_bytes: int = PIECE_BYTES,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if not auth.payload_mode.is_aws_chunked:
            raise ValueError(f"{auth.payload_mode} is not an aws-chunked payload mode")
        self.trailers: dict[str, str] = {}
        self.decoded_bytes = 0
        self._reader = reader
        self._auth = auth
        self._decoded_length = decoded_length
        self._expected = [name.strip().lower() for name in trailer_names if name.strip()]
        self._signed = auth.payload_mode.has_chunk_signatures
        self._previous = auth.seed_signature
        self._piece = piece_bytes
        self._max_line = max_line_bytes
        self._buf = bytearray()
        self._started = False

    @classmethod
    def from_headers(cls, reader: ByteReader, auth: AuthResult, headers: Mapping[str, str]) -> AwsChunkedDecoder:
        """Build from the request headers: ``x-amz-decoded-content-length`` and ``x-amz-trailer``.

        The decoded length is required for signed streaming (``MissingContentLength``, as
        AWS) and optional for ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``, which botocore sends
        without it for streams of unknown size.
        """
        lowered = [(k.lower(), v) for k, v in headers.items()]
        raw_length = next((v.strip() for k, v in lowered if k == "x-amz-decoded-content-length"), None)
        decoded: int | None = None
        if raw_length is not None:
            if not re.fullmatch(r"[0-9]{1,19}", raw_length):
                raise InvalidArgument(
                    "x-amz-decoded-content-length must be a non-negative integer",
                    ArgumentName="x-amz-decoded-content-length",
                    ArgumentValue=raw_length[:64],
                )
            decoded = int(raw_length)
        elif auth.payload_mode.has_chunk_signatures:
            raise MissingContentLength()
        names = [n for k, v in lowered if k == "x-amz-trailer" for n in v.split(",")]
        return cls(reader, auth, decoded, names)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the decoded payload in pieces; raise an ``S3Error`` at the first fault."""
        if self._started:
            raise RuntimeError("an AwsChunkedDecoder can be iterated only once")
        self._started = True
        previous_size: int | None = None
        index = 0
        while True:
            line = await self._line()
            if line is None:
                raise _truncated()
            size, signature = self._parse_chunk_header(line)
            if self._signed and size and previous_size is not None and previous_size < MIN_CHUNK_SIZE_BYTES:
                raise InvalidChunkSizeError(Chunk=str(index), BadChunkSize=str(previous_size))
            if self._decoded_length is not None and self.decoded_bytes + size > self._decoded_length:
                raise IncompleteBody("The aws-chunked body is longer than x-amz-decoded-content-length.")
            digest = hashlib.sha256() if self._signed else None
            remaining = size
            while remaining:
                piece = await self._take(min(remaining, self._piece))
                remaining -= len(piece)
                self.decoded_bytes += len(piece)
                if digest is not None:
                    digest.update(piece)
                yield piece
            if digest is not None:
                self._check_chunk(signature, digest.hexdigest())
            if size == 0:
                break
            await self._crlf()
            previous_size = size
            index += 1
        await self._read_trailers()
        if self._decoded_length is not None and self.decoded_bytes != self._decoded_length:
            raise IncompleteBody(
                f"The aws-chunked body carried {self.decoded_bytes} bytes; "
                f"x-amz-decoded-content-length says {self._decoded_length}."
            )
        if self._buf or await self._reader.read(1):
            raise _malformed("data after the end of the body")

    # --- framing -------------------------------------------------------------------------

    async def _fill(self, n: int) -> bool:
        data = await self._reader.read(n)
        self._buf += data
        return bool(data)

    async def _line(self) -> bytes | None:
        """The next CRLF-terminated line without its CRLF; None at end of stream on a line boundary."""
        while True:
            end = self._buf.find(b"\n", 0, self._max_line)
            if end >= 0:
                line = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                if not line.endswith(b"\r\n"):
                    raise _malformed("line not terminated by CRLF")
                return line[:-2]
            if len(self._buf) >= self._max_line:
                raise _malformed(f"line longer than {self._max_line} bytes")
            if not await self._fill(_READ_BYTES):
                if self._buf:
                    raise _truncated()
                return None

    async def _take(self, n: int) -> bytes:
        """Up to ``n`` (> 0) bytes of chunk data: buffered bytes first, then one read."""
        if self._buf:
            piece = bytes(self._buf[:n])
            del self._buf[:n]
            return piece
        piece = await self._reader.read(n)
        if not piece:
            raise _truncated()
        return piece

    async def _crlf(self) -> None:
        while len(self._buf) < 2:
            if not await self._fill(_READ_BYTES):
                raise _truncated()
        if self._buf[:2] != b"\r\n":
            raise _malformed("chunk data not followed by CRLF")
        del self._buf[:2]

    def _parse_chunk_header(self, line: bytes) -> tuple[int, str]:
        if self._signed:
            match = _SIGNED_HEADER_RE.fullmatch(line)
            if match is None:
                raise _malformed("expected '<hex-size>;chunk-signature=<signature>'")
            return int(match.group(1), 16), match.group(2).decode("ascii").lower()
        match = _UNSIGNED_HEADER_RE.fullmatch(line)
        if match is None:
            raise _malformed("expected '<hex-size>'")
        return int(match.group(1), 16), ""

    def _check_chunk(self, given: str, data_sha256_hex: str) -> None:
        auth = self._auth
        expected = chunk_signature(auth.signing_key, auth.amz_date, auth.scope, self._previous, data_sha256_hex)
        if not hmac.compare_digest(given.encode("ascii"), expected.encode("ascii")):
            raise SignatureDoesNotMatch("The chunk signature we calculated does not match the signature you provided.")
        self._previous = expected

    # --- trailers ------------------------------------------------------------------------

    async def _read_trailers(self) -> None:
        """Read ``name:value`` lines up to the empty line (or a clean end of stream), verify them."""
        found: list[tuple[str, str]] = []
        signature: str | None = None
        while (line := await self._line()) is not None and line:
            if len(found) >= MAX_TRAILERS:
                raise _malformed("too many trailers")
            raw_name, sep, raw_value = line.partition(b":")
            try:
                name = raw_name.decode("ascii").strip().lower()
                value = raw_value.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise _malformed("trailer is not text") from None
            if not sep or not name or signature is not None:
                raise _malformed("expected 'name:value' trailer lines, the signature last")
            if name == _TRAILER_SIGNATURE:
                signature = value
            elif name in (n for n, _ in found):
                raise _malformed(f"trailer {name} repeated")
            else:
                found.append((name, value))
        mode = self._auth.payload_mode
        if found and mode is PayloadMode.STREAMING_SIGNED:
            raise InvalidRequest("Trailers are not allowed with STREAMING-AWS4-HMAC-SHA256-PAYLOAD.")
        if mode is PayloadMode.STREAMING_SIGNED_TRAILER and (found or signature is not None):
            self._check_trailer_signature(found, signature)
        names = [n for n, _ in found]
        for name in names:
            if name not in self._expected:
                raise InvalidRequest(f"The trailer {name} was not declared in x-amz-trailer.")
        for name in self._expected:
            if name not in names:
                raise IncompleteBody(f"The trailer {name} declared in x-amz-trailer was not sent.")
        self.trailers = dict(found)

    def _check_trailer_signature(self, found: list[tuple[str, str]], given: str | None) -> None:
        auth = self._auth
        expected = trailer_signature(
            auth.signing_key, auth.amz_date, auth.scope, self._previous, canonical_trailers(found)
        )
        if given is None or not hmac.compare_digest(given.lower().encode("utf-8"), expected.encode("ascii")):
            raise SignatureDoesNotMatch(
                "The trailer signature we calculated does not match the signature you provided."
            )
