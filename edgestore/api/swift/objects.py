"""Object operations: PUT (and PUT with X-Copy-From), GET, HEAD, DELETE, POST, COPY.

Objects are stored exactly as the S3 API stores them — the same user metadata
(lower-cased names), content type and stored headers — so each API reads what the
other wrote. The body is checked while it streams: a wrong ETag or a body over the size
limit raises from the body iterator, and the object store commits only after the
iterator ends cleanly, so nothing damaged is ever stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import mimetypes
from typing import Any, AsyncIterator
from urllib.parse import unquote

import aiohttp
from aiohttp import web

from edgestore.api.byteranges import send_ranges
from edgestore.api.http import evaluate_preconditions, parse_byte_ranges
from edgestore.api.swift import large_objects, object_versioning, slo, versioned
from edgestore.api.swift.authorize import Op
from edgestore.api.swift.context import SwiftRequest, http_date, x_timestamp
from edgestore.api.swift.errors import SwiftError
from edgestore.api.swift.expiry import expiry_headers, requested_delete_at
from edgestore.api.swift.metadata import META_LIMITS, sent_meta
from edgestore.model.acl import DEFAULT_ACL
from edgestore.model.buckets import Bucket
from edgestore.model.objects import ObjectInfo

__all__ = ["object_put", "object_get", "object_head", "object_delete", "object_post", "object_copy",
           "checked_body", "content_type_for", "MAX_FILE_SIZE", "MAX_OBJECT_NAME_BYTES", "META_LIMITS"]

MAX_FILE_SIZE = 5 * 1024 ** 3
MAX_OBJECT_NAME_BYTES = 1024
# Headers Swift keeps with an object besides its metadata; S3 stores the same ones.
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
READ_CHUNK_BYTES = 256 * 1024
# A client that stops sending mid-body gets 408 instead of holding the connection (Swift's
# client_timeout is 60 s too).
IDLE_TIMEOUT_S = 60.0


def _user_meta(req: SwiftRequest) -> dict[str, str]:
    return sent_meta(req.http.headers, "object")


def _stored_headers(req: SwiftRequest) -> dict[str, str]:
    return {name: value for name in STORED_HEADERS if (value := req.http.headers.get(name))}


def _content_type(req: SwiftRequest, key: str) -> str:
    """The Content-Type sent, or one guessed from the name (swiftclient sends an empty one
    to ask for that, and so does X-Detect-Content-Type: true)."""
    sent = req.http.headers.get("Content-Type", "")
    detect = req.http.headers.get("X-Detect-Content-Type", "").lower() in ("true", "1", "yes", "on")
    return content_type_for(key, "" if detect else sent)


def content_type_for(key: str, sent: str = "") -> str:
    """``sent``, or the type an object's name suggests when none was sent."""
    return sent or mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    # The ETag is bare hex, as Swift sends it unless its optional etag_quoter middleware
    # is on; S3 shows the same value in quotes.
    headers = {"Etag": info.etag, "Last-Modified": http_date(info.last_modified),
               "X-Timestamp": x_timestamp(info.last_modified), "Content-Type": info.content_type,
               "Accept-Ranges": "bytes"}
    headers.update({name: value for name, value in info.headers.items() if name in STORED_HEADERS})
    headers.update({f"X-Object-Meta-{name}": value for name, value in info.meta.items()})
    headers.update(expiry_headers(info))
    return headers


async def checked_body(req: SwiftRequest, limit: int | None = MAX_FILE_SIZE) -> AsyncIterator[bytes]:
    """The request body, verified as it streams: within ``limit`` (None: any size) and as
    long as Content-Length said. (The MD5 an ETag header names is checked by the object store.)"""
    declared = req.http.content_length
    size = 0
    while True:
        try:
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                chunk = await req.http.content.read(READ_CHUNK_BYTES)
        except TimeoutError:
            raise SwiftError(408) from None
        except (aiohttp.ClientPayloadError, aiohttp.http_exceptions.HttpProcessingError,
                asyncio.IncompleteReadError) as exc:
            raise SwiftError(499, f"Client disconnected: {exc}") from None
        if not chunk:
            break
        size += len(chunk)
        if limit is not None and size > limit:
            raise SwiftError(413)
        yield chunk
    if declared is not None and size != declared:
        raise SwiftError(499 if size < declared else 400, "Client disconnected or sent a wrong length")


def _declared_md5(req: SwiftRequest) -> bytes | None:
    """The MD5 an ETag request header names (a mismatch is 422); a malformed one is too."""
    raw = req.http.headers.get("Etag", "").strip().strip('"').lower()
    if not raw:
        return None
    try:
        digest = bytes.fromhex(raw)
    except ValueError:
        raise SwiftError(422) from None
    if len(digest) != 16:
        raise SwiftError(422)
    return digest


async def object_put(req: SwiftRequest) -> web.StreamResponse:
    if object_versioning.VERSION_ID in req.query:
        assert req.obj is not None
        return await object_versioning.restore_version(req, await req.own_container(), req.obj)
    if "X-Copy-From" in req.http.headers:
        source = req.http.headers["X-Copy-From"]
        assert req.container is not None and req.obj is not None
        return await _copy(req, source, req.container, req.obj)
    bucket = await req.own_container()
    assert req.obj is not None
    if req.http.content_length is None and "chunked" not in req.http.headers.get("Transfer-Encoding", "").lower():
        raise SwiftError(411)
    if (req.http.content_length or 0) > MAX_FILE_SIZE:
        raise SwiftError(413)
    attrs: dict[str, Any] = {"content_type": _content_type(req, req.obj), "meta": _user_meta(req),
                             "headers": _stored_headers(req), "acl": DEFAULT_ACL}
    if (delete_at := requested_delete_at(req.http.headers)) is not None:
        attrs["delete_at"] = delete_at
    if req.query.get("multipart-manifest") == "put":
        return await slo.put_manifest(req, attrs)
    attrs.update(large_objects.manifest_attrs(req))
    if_none_match = req.http.headers.get("If-None-Match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise SwiftError(400, "If-None-Match only supports *")

    async def precondition() -> None:
        if if_none_match is not None and await req.services.objects.head(bucket.account, bucket.name,
                                                                           req.obj or "") is not None:
            raise SwiftError(412)

    async def before_commit() -> None:
        await precondition()
        await versioned.archive_current(req, bucket, req.obj or "")

    await precondition()
    info = await req.services.objects.put(bucket.account, bucket.name, req.obj, checked_body(req), attrs,
                                          before_commit=before_commit, versioning=bucket.versioning,
                                          expected_md5=_declared_md5(req))
    return web.Response(status=201, headers={"Etag": info.etag, "Last-Modified": http_date(info.last_modified),
                                             "X-Timestamp": x_timestamp(info.last_modified),
                                             **object_versioning.written_headers(bucket, info.version_id)},
                        content_type="text/html", charset="UTF-8")


async def _existing(req: SwiftRequest) -> tuple[Bucket, ObjectInfo]:
    """The container, and the object the request reads (the version ?version-id names, or
    the current one); 404 if there is none."""
    bucket = await req.own_container()
    assert req.obj is not None
    return bucket, await object_versioning.addressed(req, bucket, req.obj)


async def object_head(req: SwiftRequest) -> web.StreamResponse:
    return await _answer(req, with_body=False)


async def object_get(req: SwiftRequest) -> web.StreamResponse:
    return await _answer(req, with_body=True)


async def _answer(req: SwiftRequest, with_body: bool) -> web.StreamResponse:
    bucket, info = await _existing(req)
    body, replaced = await large_objects.body_for_get(req, info)
    headers = _object_headers(info) | replaced | object_versioning.version_headers(bucket, info)
    status = evaluate_preconditions(req.http.headers.get, body.etag, info.last_modified)
    if status == 304:
        return web.Response(status=304, headers={"Etag": headers["Etag"], "Last-Modified": headers["Last-Modified"]})
    if status == 412:
        raise SwiftError(412)
    spans = parse_byte_ranges(req.http.headers.get("Range"), body.size)
    if spans == []:
        raise SwiftError(416, None, {"Content-Range": f"bytes */{body.size}"})
    return await send_ranges(req.http, headers, body.size, body.read, spans, with_body, req.mark_response_started)


async def object_delete(req: SwiftRequest) -> web.StreamResponse:
    if req.query.get("multipart-manifest") == "delete":
        return await slo.delete_manifest(req)
    bucket = await req.own_container()
    assert req.obj is not None
    if object_versioning.VERSION_ID in req.query:
        return await object_versioning.delete_version(req, bucket, req.obj)
    if bucket.swift_versions is not None and await versioned.versioned_delete(req, bucket, req.obj):
        return web.Response(status=204)
    if bucket.versioning is None:
        # The replicas' write answers say whether there was an object: no read first.
        # (None: peers older than that answer could not say; only while a cluster is being
        # upgraded. The object is gone either way, and 204 is the answer that cannot mislead.)
        if await req.services.objects.delete_unversioned(bucket.account, bucket.name, req.obj) is False:
            raise SwiftError(404)
        return web.Response(status=204)
    if await req.services.objects.head(bucket.account, bucket.name, req.obj) is None:
        raise SwiftError(404)
    marker, _ = await req.services.versions.delete(bucket.account, bucket.name, req.obj, bucket.versioning, None)
    return web.Response(status=204, headers=object_versioning.written_headers(bucket, marker))


async def object_post(req: SwiftRequest) -> web.StreamResponse:
    """Replace the object's user metadata (all of it, as Swift does) and, if sent, its
    Content-Type and stored headers; the data, ETag and Last-Modified stay."""
    object_versioning.refuse_post(req)
    delete_at = requested_delete_at(req.http.headers)  # refused before the lookup, as in Swift
    _, info = await _existing(req)
    assert req.container is not None
    changes: dict[str, Any] = {"meta": _user_meta(req), "headers": _stored_headers(req), "delete_at": delete_at,
                               **large_objects.manifest_attrs(req, posted_to=info)}
    if req.http.headers.get("Content-Type"):
        changes["content_type"] = req.http.headers["Content-Type"]
    await req.services.objects.update(req.container, info, **changes)
    return web.Response(status=202, content_type="text/html", charset="UTF-8")


async def object_copy(req: SwiftRequest) -> web.StreamResponse:
    """COPY with Destination: "container/object" in the same account."""
    destination = req.http.headers.get("Destination")
    if not destination:
        raise SwiftError(412, "You must specify a Destination header")
    container, _, obj = unquote(destination, errors="strict").lstrip("/").partition("/")
    if not container or not obj:
        raise SwiftError(412, "Destination header must be of the form <container name>/<object name>")
    assert req.container is not None and req.obj is not None
    dest = dataclasses.replace(req, container=container, obj=obj)
    return await _copy(dest, f"{req.container}/{req.obj}", container, obj)


async def _copy(req: SwiftRequest, source: str, container: str, obj: str) -> web.StreamResponse:
    """A new object with the source's data (no bytes are copied): the source's metadata,
    with the request's X-Object-Meta-* on top (X-Fresh-Metadata: true drops the source's)."""
    src_container, _, src_obj = unquote(source, errors="strict").lstrip("/").partition("/")
    if not src_container or not src_obj:
        raise SwiftError(412, "X-Copy-From header must be of the form <container name>/<object name>")
    if len(obj.encode()) > MAX_OBJECT_NAME_BYTES:
        raise SwiftError(400, f"Object name length of {len(obj.encode())} longer than {MAX_OBJECT_NAME_BYTES}")
    await req.authorize(src_container, Op.READ)
    await req.authorize(container, Op.WRITE)
    src_req = dataclasses.replace(req, container=src_container, obj=src_obj)
    _, info = await _existing(src_req)   # (COPY ?version-id: that version)
    dest_bucket = await req.own_container()
    fresh = req.http.headers.get("X-Fresh-Metadata", "").lower() in ("true", "1", "yes", "on")
    meta = {} if fresh else dict(info.meta)
    meta.update(_user_meta(req))
    headers = {} if fresh else {k: v for k, v in info.headers.items()}
    headers.update(_stored_headers(req))
    content_type = req.http.headers.get("Content-Type") or info.content_type
    delete_at = requested_delete_at(req.http.headers)
    attrs = {"content_type": content_type, "meta": meta, "headers": headers,
             "delete_at": delete_at if delete_at is not None or fresh else info.delete_at}
    assembled = await large_objects.copy_source(src_req, info)

    async def before_commit() -> None:
        await versioned.archive_current(req, dest_bucket, obj)

    if assembled is not None:  # a large object is copied as one plain object of its bytes
        if assembled.size > MAX_FILE_SIZE:
            raise SwiftError(413)
        copied = await req.services.objects.put(dest_bucket.account, dest_bucket.name, obj,
                                                assembled.read(0, assembled.size - 1), dict(attrs, acl=DEFAULT_ACL),
                                                before_commit=before_commit, versioning=dest_bucket.versioning)
    else:
        copied = await req.services.objects.copy(info, dest_bucket.account, dest_bucket.name, obj, attrs,
                                                 DEFAULT_ACL, before_commit=before_commit,
                                                 versioning=dest_bucket.versioning)
    return web.Response(status=201, headers={
        "Etag": copied.etag, "Last-Modified": http_date(copied.last_modified),
        "X-Timestamp": x_timestamp(copied.last_modified), "X-Copied-From": f"{src_container}/{src_obj}",
        "X-Copied-From-Last-Modified": http_date(info.last_modified),
        **object_versioning.written_headers(dest_bucket, copied.version_id)}, content_type="text/html", charset="UTF-8")

