"""HTTP semantics shared by the S3 and Swift APIs: byte ranges and preconditions (RFC 7232/7233)."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import AsyncIterator, Callable

from aiohttp import web

__all__ = ["UnsatisfiableRange", "parse_byte_range", "evaluate_preconditions", "etag_matches", "send_body"]

# At most 19 digits: beyond any object size, and within what int() accepts from a string.
_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$", re.ASCII)


class UnsatisfiableRange(Exception):
    """The range asks for bytes past the end of the object (answered 416)."""


def parse_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range asked for, (first, last) inclusive; None for the whole body
    (no header, or one we do not understand, which RFC 7233 says to ignore)."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first_s, last_s = match.groups()
    if first_s == "":
        suffix = int(last_s)
        if suffix == 0:
            raise UnsatisfiableRange(header)
        return max(size - suffix, 0), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None
    if first >= size:
        raise UnsatisfiableRange(header)
    return first, min(last, size - 1)


def _http_time(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def etag_matches(header: str, etag: str) -> bool:
    """Does an If-Match/If-None-Match list name this (bare, unquoted) ETag, or '*'?"""
    candidates = [c.strip() for c in header.split(",")]
    return any(c == "*" or c.strip('"') == etag or c.removeprefix("W/").strip('"') == etag for c in candidates)


def evaluate_preconditions(header: Callable[[str], str | None], etag: str,
                           last_modified: float, prefix: str = "") -> int | None:
    """412 or 304 as RFC 7232 orders the checks, or None to go on. `prefix` reads the
    copy-source variants (x-amz-copy-source-if-match ...) of the same four headers."""
    modified = int(last_modified)
    if_match = header(prefix + "If-Match")
    if_unmodified = header(prefix + "If-Unmodified-Since")
    if if_match is not None:
        if not etag_matches(if_match, etag):
            return 412
    elif if_unmodified is not None:
        since = _http_time(if_unmodified)
        if since is not None and modified > since:
            return 412
    if_none_match = header(prefix + "If-None-Match")
    if_modified = header(prefix + "If-Modified-Since")
    if if_none_match is not None:
        if etag_matches(if_none_match, etag):
            return 304
    elif if_modified is not None:
        since = _http_time(if_modified)
        if since is not None and modified <= since:
            return 304
    return None


async def send_body(http: web.Request, response: web.StreamResponse, pieces: AsyncIterator[bytes] | None,
                    on_started: Callable[[], None]) -> web.StreamResponse:
    """Send the headers, then the pieces (none for HEAD). The first piece is read before the
    headers go out, so an object that cannot be read is still answered as an error;
    `on_started` marks the point after which a failure can only cut the connection."""
    first = await anext(pieces, b"") if pieces is not None else b""
    on_started()
    await response.prepare(http)
    if pieces is not None:
        await response.write(first)
        async for piece in pieces:
            await response.write(piece)
    await response.write_eof()
    return response
