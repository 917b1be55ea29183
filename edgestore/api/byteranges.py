"""Answering a GET with the byte ranges asked for: the whole body (200), one range (206
with Content-Range), or several as one multipart/byteranges body (RFC 7233 appendix A),
laid out as Swift lays it out. The body is streamed range by range; its length is known
before the first byte, so the answer always carries a Content-Length."""

from __future__ import annotations

import secrets
from typing import AsyncIterator, Callable

from aiohttp import web

from edgestore.api.http import send_body

__all__ = ["send_ranges"]

Reader = Callable[[int, int], AsyncIterator[bytes]]


def _part_header(boundary: str, content_type: str, first: int, last: int, size: int) -> bytes:
    return (f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n").encode("latin-1", "replace")


async def _multipart(read: Reader, spans: list[tuple[int, int]], size: int, content_type: str,
                     boundary: str) -> AsyncIterator[bytes]:
    for first, last in spans:
        pieces = read(first, last)
        # The part's first bytes go with its header: a body that cannot be read fails on
        # the first piece, before any header is sent (see send_body).
        yield _part_header(boundary, content_type, first, last, size) + await anext(pieces, b"")
        async for piece in pieces:
            yield piece
        yield b"\r\n"
    yield f"--{boundary}--".encode()


async def send_ranges(http: web.Request, headers: dict[str, str], size: int, read: Reader,
                      spans: list[tuple[int, int]] | None, with_body: bool,
                      on_started: Callable[[], None]) -> web.StreamResponse:
    """`spans` as parse_byte_ranges gives them, non-empty, or None for the whole body."""
    if not spans:
        response = web.StreamResponse(status=200, headers=headers)
        response.content_length = size
        pieces = read(0, size - 1) if with_body and size else None
    elif len(spans) == 1:
        first, last = spans[0]
        response = web.StreamResponse(status=206, headers=headers)
        response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        response.content_length = last - first + 1
        pieces = read(first, last) if with_body else None
    else:
        boundary = secrets.token_hex(16)
        content_type = headers.get("Content-Type", "application/octet-stream")
        response = web.StreamResponse(status=206, headers=headers)
        response.headers["Content-Type"] = f"multipart/byteranges;boundary={boundary}"
        response.content_length = sum(len(_part_header(boundary, content_type, first, last, size))
                                      + last - first + 1 + 2 for first, last in spans) + len(boundary) + 4
        pieces = _multipart(read, spans, size, content_type, boundary) if with_body else None
    return await send_body(http, response, pieces, on_started)
