"""HTTP semantics shared by the S3 and Swift APIs: byte ranges and preconditions (RFC 7232/7233)."""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime
from typing import AsyncIterator, Callable

from aiohttp import web

__all__ = ["UnsatisfiableRange", "parse_byte_range", "parse_byte_ranges", "range_specs", "evaluate_preconditions",
           "etag_matches", "send_body", "MAX_RANGES", "imf_fixdate"]

# At most 19 digits: beyond any object size, and within what int() accepts from a string.
_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$", re.ASCII)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def imf_fixdate(seconds: int) -> str:
    """An HTTP date (RFC 9110's IMF-fixdate), as email.utils.formatdate(usegmt=True) writes
    it at several times the cost: every object GET and HEAD sends one."""
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


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


# Swift's limits on one Range header (RFC 7233 section 6.1 asks servers to refuse egregious
# ones): more ranges than this, more overlapping pairs, or this many out of order are refused.
MAX_RANGES = 50
MAX_RANGE_OVERLAPS = 2
MAX_NONASCENDING_RANGES = 8
_RANGE_DIGITS = re.compile(r"^\d{1,19}$", re.ASCII)


def range_specs(header: str) -> list[tuple[int | None, int | None]] | None:
    """The (first, last) pairs of a Range header as written (None for an omitted end), or
    None when any spec is malformed: RFC 7233 says to ignore such a header whole."""
    value = header.replace(" ", "")
    if not value.lower().startswith("bytes="):
        return None
    specs: list[tuple[int | None, int | None]] = []
    for spec in value[6:].split(","):
        first_s, dash, last_s = spec.partition("-")
        if not dash or (first_s and not _RANGE_DIGITS.match(first_s)) or (last_s and not _RANGE_DIGITS.match(last_s)):
            return None
        first, last = (int(first_s) if first_s else None), (int(last_s) if last_s else None)
        if (first is None and last is None) or (first is not None and last is not None and last < first):
            return None
        specs.append((first, last))
    return specs


def parse_byte_ranges(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """Every range a Range header asks for, as Swift answers them: (first, last) inclusive
    for each satisfiable one, in the order asked; None to ignore the header (absent or
    malformed: the whole body, 200); [] for 416 (none satisfiable, or an egregious set)."""
    specs = range_specs(header) if header else None
    if specs is None:
        return None
    spans: list[tuple[int, int]] = []
    for first, last in specs:
        if first is None:
            assert last is not None
            if last and size:  # "-0" asks for nothing, and an empty body has no last bytes
                spans.append((max(size - last, 0), size - 1))
        elif first < size:
            spans.append((first, size - 1 if last is None else min(last, size - 1)))
    if len(spans) > MAX_RANGES:
        return []
    overlaps = sum(1 for i, (a1, b1) in enumerate(spans) for a2, b2 in spans[i + 1:]
                   if a1 < a2 <= b1 or a1 <= b2 < b1 or a2 < a1 <= b2 or a2 <= b1 < b2)
    if overlaps > MAX_RANGE_OVERLAPS:
        return []
    if len(spans) >= MAX_NONASCENDING_RANGES and spans != sorted(spans):
        return []
    return spans


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
    # Hold the headers until the first piece (or the end, for HEAD), as aiohttp does for a
    # web.Response: a small object leaves in one send instead of two. On loopback each send
    # costs the sender the receiver's TCP work too; py-spy put socket writes at a quarter of
    # a coordinator's CPU under small GETs. StreamResponse has __slots__: an aiohttp without
    # the switch would refuse the attribute, so it is set only where it exists.
    if hasattr(response, "_send_headers_immediately"):
        response._send_headers_immediately = False
    await response.prepare(http)
    if pieces is not None:
        await _write(response, first)
        del first  # each piece may be a whole block: hold none while the next is read
        async for piece in pieces:
            await _write(response, piece)
            del piece
    await response.write_eof()
    return response


# A piece is written in slices of this size, each drained before the next: a 1 MiB block
# handed to the transport at once would be copied into its buffer whole when the client
# reads slower than we send, for every response in flight.
WRITE_SLICE_BYTES = 256 * 1024


async def _write(response: web.StreamResponse, piece: bytes) -> None:
    if len(piece) <= WRITE_SLICE_BYTES:
        await response.write(piece)
        return
    view = memoryview(piece)
    for offset in range(0, len(view), WRITE_SLICE_BYTES):
        await response.write(view[offset:offset + WRITE_SLICE_BYTES])
