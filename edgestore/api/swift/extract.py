"""Bulk extract (Swift's bulk middleware): `PUT /v1/AUTH_acct[/container[/prefix]]
?extract-archive=tar|tar.gz|tar.bz2` with a tar archive as the body stores each regular
file in it as an object.

A member's path, below the container and prefix of the URL, names its object; sent to the
account, the path's first part is the container, made when missing (by the account's
owner). Files at the account's level, directories, links and devices are passed over.
Every object gets the request's X-Delete-At/-After and X-Object-Meta-*, and what the
member's pax records say (`user.mime_type` and `user.meta.*` extended attributes, as
`tar --xattrs` and bsdtar write them). The archive streams through: one member at a time
goes on into its object's PUT, as fast as the cluster stores it.

As in Swift the answer is 200 and the outcome is in the body (plain, JSON or XML):
`Number Files Created`, `Response Status` (201 Created, or 400 with `Response Body`
saying why), and `Errors` listing each file not stored with its status. Spaces are
sent while a long archive is being stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator
from urllib.parse import quote

from aiohttp import web

from edgestore import errors as domain
from edgestore.api.swift import container as containers
from edgestore.api.swift import objects
from edgestore.api.swift.account import enforce_account_quota
from edgestore.api.swift.authorize import Op
from edgestore.api.swift.bulk import Heartbeat, Refused, best_format
from edgestore.api.swift.container import MAX_CONTAINER_NAME_BYTES
from edgestore.api.swift.context import SwiftRequest
from edgestore.api.swift.errors import SwiftError, as_swift_error, status_line
from edgestore.api.swift.expiry import requested_delete_at
from edgestore.api.swift.metadata import check_meta, sent_meta
from edgestore.api.swift.result_body import render_body
from edgestore.api.swift.tarstream import TarError, TarMember, decompressed, read_members
from edgestore.model.acl import DEFAULT_ACL
from edgestore.model.buckets import Bucket

__all__ = ["extract_archive", "is_extract", "CAPABILITIES"]

MAX_CONTAINERS = 10000         # Swift's max_containers_per_extraction
MAX_FAILED_EXTRACTIONS = 1000  # Swift's max_failed_extractions
CAPABILITIES = {"max_containers_per_extraction": MAX_CONTAINERS, "max_failed_extractions": MAX_FAILED_EXTRACTIONS}
ARCHIVES = {"tar": "", "tar.gz": "gz", "tar.bz2": "bz2"}  # extract-archive= values, dots stripped
# Extended attributes (pax records, GNU tar's and bsdtar's spellings) that become headers.
_XATTR_PREFIXES = ("SCHILY.xattr.user.", "LIBARCHIVE.xattr.user.")


def is_extract(method: str, query: dict[str, str]) -> bool:
    return method == "PUT" and "extract-archive" in query


class _BodyFailed(Exception):
    """The request body itself failed (client gone, too slow): the whole request ends."""

    def __init__(self, error: SwiftError) -> None:
        super().__init__(str(error))
        self.error = error


async def _archive_bytes(req: SwiftRequest) -> AsyncIterator[bytes]:
    try:
        async for chunk in objects.checked_body(req, limit=None):
            yield chunk
    except SwiftError as exc:
        raise _BodyFailed(exc) from None


@dataclass
class _Extraction:
    req: SwiftRequest
    base: str  # "container[/prefix]" from the URL, "" for the account
    meta: dict[str, str]
    delete_at: int | None
    created: int = 0
    errors: list[list[str]] = field(default_factory=list)
    server_failed: bool = False
    # Containers met so far: their bucket, or the status that kept files out of them.
    containers: dict[str, Bucket | int] = field(default_factory=dict)
    made: int = 0

    def fields(self, status: str, body: str = "") -> dict[str, object]:
        return {"Number Files Created": self.created, "Response Status": status, "Response Body": body}

    def fail(self, path: str, status: int) -> None:
        self.server_failed |= status >= 500
        self.errors.append([quote(path, safe="/"), status_line(status)])
        if len(self.errors) >= MAX_FAILED_EXTRACTIONS:
            raise Refused(400, "Max extraction failures exceeded")

    async def store(self, member: TarMember, data: AsyncIterator[bytes]) -> None:
        """Store one member as its object, or note why not."""
        name = member.name[2:] if member.name.startswith("./") else member.name
        path = f"{self.base}/{name.lstrip('/')}" if self.base else name.lstrip("/")
        container_name, slash, obj = path.partition("/")
        if not member.regular or not slash:
            return  # not a file, or a file at the account's level: passed over, as in Swift
        if member.undecodable_name or "\x00" in path:
            return self.fail(path, 412)
        if not container_name or not obj or len(container_name.encode()) > MAX_CONTAINER_NAME_BYTES \
                or len(obj.encode()) > objects.MAX_OBJECT_NAME_BYTES or member.sparse:
            return self.fail(path, 400)  # (a GNU sparse file's holes are not in its bytes)
        if member.size > objects.MAX_FILE_SIZE:
            return self.fail(path, 413)
        bucket = await self._container(container_name)
        if isinstance(bucket, int):
            return self.fail(path, bucket)
        try:
            attrs = self._attrs(obj, member)
            await containers.enforce_quota(self.req, container_name, member.size)
            await enforce_account_quota(self.req, member.size)
            await self.req.services.objects.put(bucket.account, bucket.name, obj, data, attrs,
                                                versioning=bucket.versioning)
        except (TarError, _BodyFailed):
            raise
        except Exception as exc:  # each file's failure is a line of the result, as in Swift
            return self.fail(path, as_swift_error(exc).status)
        self.created += 1

    def _attrs(self, obj: str, member: TarMember) -> dict[str, Any]:
        meta, content_type = dict(self.meta), ""
        for key, value in member.pax.items():
            for prefix in _XATTR_PREFIXES:
                if key.startswith(prefix):
                    attr = key[len(prefix):]
                    if attr == "mime_type":
                        content_type = value
                    elif attr.startswith("meta."):
                        meta[attr[len("meta."):].lower()] = value
        check_meta(meta, "x-object-meta-")
        attrs: dict[str, Any] = {"content_type": objects.content_type_for(obj, content_type), "meta": meta,
                                 "headers": {}, "acl": DEFAULT_ACL}
        if self.delete_at is not None:
            attrs["delete_at"] = self.delete_at
        return attrs

    async def _container(self, name: str) -> Bucket | int:
        """The account's container ``name`` (made if missing and the caller owns the
        account), or the status a file bound for it fails with. A caller nobody knows (401)
        ends the whole request, as in Swift."""
        known = self.containers.get(name)
        if known is not None:
            return known
        result: Bucket | int
        try:
            await self.req.authorize(name, Op.WRITE)
            bucket = await self.req.services.buckets.lookup(name)
            if bucket is None and self.req.owner:
                if self.made >= MAX_CONTAINERS:
                    raise Refused(400, f"More than {MAX_CONTAINERS} containers to create from tar.")
                bucket = await self.req.services.buckets.create(self.req.account, name)
                self.made += 1
            result = bucket if bucket is not None and bucket.account == self.req.account else 404
        except domain.BucketExists as exc:
            result = 409 if not exc.owned_by_requester else 503  # (made meanwhile: try again)
        except SwiftError as exc:
            if exc.status == 401:
                raise
            result = exc.status
        if result != 503:
            self.containers[name] = result
        return result


async def extract_archive(req: SwiftRequest) -> web.StreamResponse:
    kind = ARCHIVES.get(req.query["extract-archive"].lower().strip("."))
    if kind is None:
        raise SwiftError(400, "Unsupported archive format")
    fmt = best_format(req.http.headers.get("Accept"))
    if fmt is None:
        raise SwiftError(406)
    if req.http.content_length is None and "chunked" not in req.http.headers.get("Transfer-Encoding", "").lower():
        raise SwiftError(411)
    base = "/".join(part for part in (req.container, req.obj) if part).rstrip("/")
    work = _Extraction(req, base, sent_meta(req.http.headers, "object"), requested_delete_at(req.http.headers))
    heartbeat = Heartbeat(req, fmt)
    try:
        async for member, data in read_members(decompressed(_archive_bytes(req), kind)):
            await work.store(member, data.chunks())
            await heartbeat.beat()
        if work.errors:
            fields = work.fields(status_line(502 if work.server_failed else 400))
        elif not work.created:
            fields = work.fields(status_line(400), "Invalid Tar File: No Valid Files")
        else:
            fields = work.fields(status_line(201))
    except TarError as exc:
        fields = work.fields(status_line(400), f"Invalid Tar File: {exc}")
    except Refused as refused:
        fields = work.fields(status_line(refused.status), refused.body)
    except SwiftError as exc:
        if heartbeat.response is None:
            raise  # (401) nothing sent yet: a plain answer
        fields = work.fields(status_line(exc.status), exc.body or "")
    except _BodyFailed as failed:
        raise failed.error from None
    return await heartbeat.finish(render_body(fmt, fields, work.errors, "extract"))
