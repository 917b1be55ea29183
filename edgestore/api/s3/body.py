"""The payload of an S3 upload, whatever way the client sent it.

Plain bodies (signed with x-amz-content-sha256, or UNSIGNED-PAYLOAD) and aws-chunked
bodies (chunk-signed or not, with or without trailing checksums) all come out as one
stream of bytes. Every check that needs the whole body (the payload hash, Content-MD5,
x-amz-checksum-*, the length) runs when the stream ends and raises from the iterator,
so the object store, which commits only after the stream ended cleanly, never
acknowledges a damaged or short upload.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from typing import Any, AsyncIterator

import aiohttp

from edgestore.api.s3.checksums import Checksum, new_checksum, parse_requested, verify
from edgestore.api.s3.chunked import AwsChunkedDecoder
from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import (
    EntityTooLarge,
    IncompleteBody,
    InvalidDigest,
    InvalidRequest,
    MissingContentLength,
    RequestTimeout,
    XAmzContentSHA256Mismatch,
)
from edgestore.api.s3.sigv4 import AuthResult, PayloadMode

__all__ = ["RequestBody", "request_body", "MAX_PUT_BYTES"]

MAX_PUT_BYTES = 5 * 1024 ** 3
READ_SIZE = 256 * 1024
IDLE_TIMEOUT_S = 60.0

_STREAMING = {PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER,
              PayloadMode.STREAMING_UNSIGNED_TRAILER}


class _TimedReader:
    """The request body stream, with a deadline on every read: a client that stops
    sending gets RequestTimeout instead of holding a connection and buffers forever."""

    def __init__(self, stream: aiohttp.StreamReader) -> None:
        self._stream = stream

    async def _guard(self, coro: Any) -> Any:
        try:
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                return await coro
        except TimeoutError:
            raise RequestTimeout() from None
        except asyncio.IncompleteReadError:
            raise IncompleteBody() from None
        except (aiohttp.ClientPayloadError, aiohttp.http_exceptions.HttpProcessingError,
                ConnectionError) as exc:
            raise IncompleteBody(f"The request body ended early: {exc}") from None

    async def read(self, n: int = -1) -> bytes:
        return await self._guard(self._stream.read(n))  # type: ignore[no-any-return]

    async def readline(self) -> bytes:
        return await self._guard(self._stream.readline())  # type: ignore[no-any-return]

    async def readexactly(self, n: int) -> bytes:
        return await self._guard(self._stream.readexactly(n))  # type: ignore[no-any-return]


def _declared_length(req: S3Request, streaming: bool) -> int | None:
    headers = req.http.headers
    raw = headers.get("x-amz-decoded-content-length") if streaming else headers.get("Content-Length")
    if raw is None:
        if streaming or "chunked" not in headers.get("Transfer-Encoding", "").lower():
            raise MissingContentLength()
        return None
    try:
        length = int(raw)
    except ValueError:
        raise MissingContentLength() from None
    if length < 0:
        raise MissingContentLength()
    if length > MAX_PUT_BYTES:
        raise EntityTooLarge(ProposedSize=str(length), MaxSizeAllowed=str(MAX_PUT_BYTES))
    return length


def _content_md5(req: S3Request) -> bytes | None:
    raw = req.http.headers.get("Content-MD5")
    if raw is None:
        return None
    try:
        digest = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidDigest(Content_MD5=raw) from None
    if len(digest) != 16:
        raise InvalidDigest(Content_MD5=raw)
    return digest


class RequestBody:
    def __init__(self, req: S3Request, auth: AuthResult | None) -> None:
        self._req = req
        self._auth = auth
        mode = auth.payload_mode if auth is not None else PayloadMode.UNSIGNED
        self._mode = mode
        self._length = _declared_length(req, mode in _STREAMING)
        self._md5 = _content_md5(req)
        self._requested = parse_requested(req.http.headers)
        if self._requested is not None and self._requested.location == "trailer" and mode not in _STREAMING:
            raise InvalidRequest("x-amz-trailer is only allowed with an aws-chunked payload "
                                 "(a STREAMING-... x-amz-content-sha256).")
        self._checksum: Checksum | None = (
            new_checksum(self._requested.algorithm) if self._requested is not None else None)

    def _pieces(self) -> AsyncIterator[bytes]:
        reader = _TimedReader(self._req.http.content)
        if self._mode in _STREAMING:
            assert self._auth is not None
            trailers = [self._requested.header] if self._requested and self._requested.location == "trailer" else []
            self._decoder = AwsChunkedDecoder(reader, self._auth, self._length, trailers)
            return self._decoder.chunks()
        return self._plain(reader)

    async def _plain(self, reader: _TimedReader) -> AsyncIterator[bytes]:
        received = 0
        while True:
            piece = await reader.read(READ_SIZE)
            if not piece:
                break
            received += len(piece)
            yield piece
        if self._length is not None and received != self._length:
            raise IncompleteBody()

    async def chunks(self) -> AsyncIterator[bytes]:
        sha256 = hashlib.sha256() if self._mode is PayloadMode.SIGNED else None
        received = 0
        async for piece in self._pieces():
            received += len(piece)
            if received > MAX_PUT_BYTES:
                raise EntityTooLarge(MaxSizeAllowed=str(MAX_PUT_BYTES))
            for h in (sha256, self._checksum):
                if h is not None:
                    h.update(piece)
            yield piece
        if sha256 is not None and self._auth is not None and sha256.hexdigest() != self._auth.content_sha256:
            raise XAmzContentSHA256Mismatch(ClientComputedContentSHA256=self._auth.content_sha256,
                                            S3ComputedContentSHA256=sha256.hexdigest())
        if self._requested is not None and self._checksum is not None:
            if self._requested.location == "header":
                expected = self._requested.expected_b64 or ""
            else:
                expected = self._decoder.trailers.get(self._requested.header, "")
            verify(self._requested.algorithm, expected, self._checksum)

    @property
    def content_md5(self) -> bytes | None:
        """The Content-MD5 the client declared: the object store checks it against the MD5
        it computes anyway for the ETag (DigestMismatch -> BadDigest)."""
        return self._md5

    def late_attrs(self) -> dict[str, Any]:
        """Stored with the object once the body is complete: its verified checksum."""
        if self._checksum is None:
            return {}
        return {"checksums": {self._checksum.name: self._checksum.b64()}}


def request_body(req: S3Request) -> RequestBody:
    return RequestBody(req, req.auth)


