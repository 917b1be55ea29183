"""Bulk delete (Swift's bulk middleware): `POST /v1/AUTH_acct?bulk-delete` (or DELETE)
with a newline-separated list of URL-encoded "/container/object" and "/container" paths.

Each path is deleted through the same handler a DELETE of it would reach, objects first,
then containers (which must be empty by then). As in Swift, the answer is always 200: the
outcome — counts, a status, failed paths — is in the body, in the format the Accept header
picks (plain text, JSON or XML). While a long request is still deleting, a space is sent
every HEARTBEAT_S so that clients and proxies do not time the connection out.

The list is read in full before anything is deleted (so an over-long list deletes
nothing), but bounded: at most MAX_DELETES paths of at most MAX_LINE_BYTES each.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import quote, unquote_to_bytes

from aiohttp import web

from edgestore.api.swift import container, objects
from edgestore.api.swift.container import MAX_CONTAINER_NAME_BYTES
from edgestore.api.swift.context import SwiftRequest
from edgestore.api.swift.errors import as_swift_error, status_line, stock_body
from edgestore.api.swift.result_body import render_body

__all__ = ["bulk_delete", "CAPABILITIES", "is_bulk_delete", "best_format", "Heartbeat", "Refused"]

MAX_DELETES = 10000          # Swift's max_deletes_per_request
MAX_FAILED_DELETES = 1000    # Swift's max_failed_deletes
CAPABILITIES = {"max_deletes_per_request": MAX_DELETES, "max_failed_deletes": MAX_FAILED_DELETES}
MAX_PATH_BYTES = objects.MAX_OBJECT_NAME_BYTES + MAX_CONTAINER_NAME_BYTES + 2
# An encoded line may be three times its path (every byte %XX); Swift allows only twice,
# which refuses some valid long non-ASCII names.
MAX_LINE_BYTES = 3 * MAX_PATH_BYTES
READ_CHUNK_BYTES = 64 * 1024
HEARTBEAT_S = 10.0
CONCURRENCY = 4              # deletes in flight at once (Swift's delete_concurrency is 2)
FORMATS = ("text/plain", "application/json", "application/xml", "text/xml")


def is_bulk_delete(method: str, container_name: str | None, query: dict[str, str]) -> bool:
    return container_name is None and method in ("POST", "DELETE") and "bulk-delete" in query


class Refused(Exception):
    """The whole request fails: its status line and body go into the result."""

    def __init__(self, status: int, body: str | None = None) -> None:
        super().__init__(body)
        self.status = status
        self.body = stock_body(status) if body is None else body


@dataclass
class _Deletes:
    status: str = "200 OK"
    body: str = ""
    deleted: int = 0
    not_found: int = 0
    errors: list[list[str]] = field(default_factory=list)
    server_failed: bool = False

    def fields(self) -> dict[str, object]:
        return {"Response Status": self.status, "Response Body": self.body,
                "Number Deleted": self.deleted, "Number Not Found": self.not_found}


def best_format(accept: str | None) -> str | None:
    """The format an Accept header picks among FORMATS (highest q first, then the
    client's order), plain text when there is none, None when nothing fits."""
    if not accept:
        return FORMATS[0]
    ranges: list[tuple[float, str, str]] = []
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        kind, slash, sub = media.lower().partition("/")
        if not slash or not kind or not sub:
            return None
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    return None
        ranges.append((q, kind, sub))
    for q, kind, sub in sorted(ranges, key=lambda r: -r[0]):
        if q <= 0:
            continue
        for offer in FORMATS:
            offer_kind, offer_sub = offer.split("/")
            if kind in ("*", offer_kind) and sub in ("*", offer_sub):
                return offer
    return None


async def _read_paths(http: web.Request) -> list[bytes]:
    """The URL-decoded paths of the body, streamed line by line."""
    if http.content_length is None and "chunked" not in http.headers.get("Transfer-Encoding", "").lower():
        raise Refused(411)
    paths: list[bytes] = []
    pending = b""

    def add(line: bytes) -> None:
        if len(line) > MAX_LINE_BYTES:
            raise Refused(400, "Invalid File Name")
        line = line.strip()
        if line:
            paths.append(unquote_to_bytes(line))
            if len(paths) > MAX_DELETES:
                raise Refused(413, f"Maximum Bulk Deletes: {MAX_DELETES} per request")

    while True:
        try:
            async with asyncio.timeout(objects.IDLE_TIMEOUT_S):
                chunk = await http.content.read(READ_CHUNK_BYTES)
        except TimeoutError:
            raise Refused(408) from None
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            add(line)
        if len(pending) > MAX_LINE_BYTES:
            raise Refused(400, "Invalid File Name")  # before it grows any further
    add(pending)
    return paths


def _is_object(path: bytes) -> bool:
    return b"/" in path.strip(b"/")


def _quoted(path: bytes) -> str:
    return quote(path, safe="/")


async def _delete_one(req: SwiftRequest, path: bytes) -> int:
    """Delete one path through the handler its own DELETE would reach; the status."""
    try:
        name = path.decode("utf-8")
    except UnicodeDecodeError:
        return 412
    if "\x00" in name:
        return 412
    if _is_object(path):  # an object keeps a trailing slash of its name
        container_name, _, obj = name.lstrip("/").partition("/")
    else:
        container_name, obj = name.strip("/"), ""
    if not container_name:
        return 405  # "/" names the account, which is not deleted this way
    if len(container_name.encode()) > MAX_CONTAINER_NAME_BYTES or len(obj.encode()) > objects.MAX_OBJECT_NAME_BYTES:
        return 400
    sub = SwiftRequest(req.http, req.services, req.account, container_name, obj or None, {}, req.user)
    handler: Callable[[SwiftRequest], Awaitable[web.StreamResponse]] = \
        objects.object_delete if obj else container.container_delete
    try:
        return (await handler(sub)).status
    except Exception as exc:  # each path's failure is a line of the result, as in Swift
        return as_swift_error(exc).status


class Heartbeat:
    """Sends the 200 early and a space now and then while a long bulk request goes on."""

    def __init__(self, req: SwiftRequest, content_type: str) -> None:
        self._req = req
        self._content_type = content_type
        self._last = time.monotonic()
        self.response: web.StreamResponse | None = None

    async def beat(self) -> None:
        if time.monotonic() - self._last < HEARTBEAT_S:
            return
        self._last = time.monotonic()
        if self.response is None:
            self.response = web.StreamResponse(status=200)
            self.response.content_type = self._content_type
            self.response.charset = "utf-8"
            await self.response.prepare(self._req.http)
            self._req.mark_response_started()
            # Swift starts an XML answer with its declaration, then pads with spaces.
            await self.response.write(b'<?xml version="1.0" encoding="UTF-8"?>\n'
                                      if self._content_type.endswith("/xml") else b" ")
        else:
            await self.response.write(b" ")

    async def finish(self, body: bytes) -> web.StreamResponse:
        """The answer, ``body`` its result: after the padding if it started, else whole."""
        if self.response is not None:
            await self.response.write(b"\r\n\r\n" + body)
            await self.response.write_eof()
            return self.response
        response = web.Response(status=200, body=body, content_type=self._content_type, charset="utf-8")
        if not self._req.http.content.at_eof():
            response.force_close()  # refused before the whole body was read: do not read the rest
        return response


async def _delete_all(req: SwiftRequest, paths: list[bytes], result: _Deletes, heartbeat: Heartbeat) -> None:
    # Objects first, then containers: a container listed before its objects is empty by then.
    ordered = [p for p in paths if _is_object(p)] + [p for p in paths if not _is_object(p)]
    for start in range(0, len(ordered), CONCURRENCY):
        batch = ordered[start:start + CONCURRENCY]
        statuses = await asyncio.gather(*(_delete_one(req, path) for path in batch))
        for path, status in zip(batch, statuses, strict=True):
            if 200 <= status < 300:
                result.deleted += 1
            elif status == 404:
                result.not_found += 1
            else:
                result.server_failed |= status >= 500
                result.errors.append([_quoted(path), status_line(status)])
        await heartbeat.beat()
        if len(result.errors) >= MAX_FAILED_DELETES:
            raise Refused(400, "Max delete failures exceeded")


async def bulk_delete(req: SwiftRequest) -> web.StreamResponse:
    fmt = best_format(req.http.headers.get("Accept"))
    content_type = fmt or "text/plain"
    heartbeat = Heartbeat(req, content_type)
    result = _Deletes()
    try:
        if fmt is None:
            raise Refused(406)
        sent_type = req.http.headers.get("Content-Type")
        if sent_type and not sent_type.startswith("text/plain"):
            raise Refused(406)  # only newline-separated names, as in Swift
        paths = await _read_paths(req.http)
        await _delete_all(req, paths, result, heartbeat)
        if result.errors:
            result.status = status_line(502 if result.server_failed else 400)
        elif not (result.deleted or result.not_found):
            result.status, result.body = status_line(400), "Invalid bulk delete."
    except Refused as refused:
        result.status, result.body = status_line(refused.status), refused.body
    return await heartbeat.finish(render_body(fmt, result.fields(), result.errors, "delete"))
