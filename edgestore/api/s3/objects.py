"""Object-level S3 operations: PutObject, GetObject, HeadObject, DeleteObject."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiohttp import web

from edgestore.api.http import UnsatisfiableRange, etag_matches, evaluate_preconditions, parse_byte_range, send_body
from edgestore.api.s3.acl import requested_acl
from edgestore.api.s3.body import request_body
from edgestore.api.s3.checksums import header_name
from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import (
    AccessDenied,
    InvalidArgument,
    InvalidPartNumber,
    InvalidRange,
    InvalidRequest,
    MetadataTooLarge,
    NoSuchKey,
    PreconditionFailed,
)
from edgestore.api.s3.errors import NotImplemented as S3NotImplemented
from edgestore.api.s3.tagging import tags_from_header
from edgestore.api.s3.versions_addressed import live_version
from edgestore.api.s3.xml import decimal, http_date
from edgestore.model.acl import Access
from edgestore.model.large_objects import open_body
from edgestore.model.objects import NULL_VERSION, ObjectInfo

# Standard headers stored with an object and returned with it.
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language",
                  "expires", "x-amz-website-redirect-location", "x-amz-storage-class")
MAX_USER_METADATA_BYTES = 2048
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type", "response-content-language": "Content-Language",
    "response-expires": "Expires", "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def object_attrs(req: S3Request) -> dict[str, Any]:
    headers = req.http.headers
    meta = {name[11:].lower(): value for name, value in headers.items()
            if name.lower().startswith("x-amz-meta-")}
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_USER_METADATA_BYTES:
        raise MetadataTooLarge(MaxSizeAllowed=str(MAX_USER_METADATA_BYTES))
    stored = {}
    for name in STORED_HEADERS:
        value = headers.get(name)
        if name == "content-encoding" and value:
            # aws-chunked describes the transfer, not the object: S3 drops it.
            value = ",".join(v.strip() for v in value.split(",") if v.strip() != "aws-chunked")
        if value:
            stored[name] = value
    attrs = {"content_type": headers.get("Content-Type") or "binary/octet-stream",
             "meta": meta, "headers": stored, "acl": requested_acl(req)}
    tags = tags_from_header(req)
    if tags is not None:
        attrs["tags"] = tags
    return attrs


def _object_headers(req: S3Request, info: ObjectInfo) -> dict[str, str]:
    out = {"ETag": f'"{info.etag}"', "Last-Modified": http_date(info.last_modified),
           "Content-Type": info.content_type, "Accept-Ranges": "bytes"}
    if info.version_id is not None:
        out["x-amz-version-id"] = info.version_id
    if info.tags:
        out["x-amz-tagging-count"] = str(len(info.tags))
    for name, value in info.headers.items():
        out[name] = value
    for name, value in info.meta.items():
        out[f"x-amz-meta-{name}"] = value
    if req.http.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        for algorithm, value in info.checksums.items():
            out[header_name(algorithm)] = value
    for param, header in RESPONSE_OVERRIDES.items():
        if param in req.query:
            value = req.query[param]
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):  # would split or break the header
                raise InvalidArgument(f"Invalid value for {param}", ArgumentName=param, ArgumentValue=value[:64])
            out[header] = value
    return out


def write_precondition(req: S3Request, account: str, bucket: str) -> Callable[[], Awaitable[None]] | None:
    """Conditional writes: If-None-Match: * (create only) and If-Match: ETag (compare and
    swap), checked against the newest version a quorum knows just before the commit.
    Two writers racing past the check within one commit both win, newest last: the
    replicas merge by timestamp, they have no lock to hold."""
    if_none_match = req.http.headers.get("If-None-Match")
    if_match = req.http.headers.get("If-Match")
    if if_none_match is None and if_match is None:
        return None
    if if_none_match is not None and if_none_match.strip() != "*":
        raise S3NotImplemented(Header="If-None-Match")
    key = req.key or ""

    async def check() -> None:
        current = await req.services.objects.head(account, bucket, key)
        if if_none_match is not None and current is not None:
            raise PreconditionFailed(Condition="If-None-Match")
        if if_match is not None:
            if current is None:
                raise NoSuchKey(Key=key)
            if not etag_matches(if_match, current.etag):
                raise PreconditionFailed(Condition="If-Match")
    return check


async def put_object(req: S3Request) -> web.StreamResponse:
    bucket = await req.bucket_for(Access.WRITE)
    assert req.key is not None
    attrs = object_attrs(req)
    precondition = write_precondition(req, bucket.account, bucket.name)
    if precondition is not None:
        await precondition()  # fail before the body is read, and again before the commit
    body = request_body(req)
    info = await req.services.objects.put(bucket.account, bucket.name, req.key, body.chunks(),
                                          attrs, late_attrs=body.late_attrs, before_commit=precondition,
                                          versioning=bucket.versioning, expected_md5=body.content_md5)
    headers = {"ETag": f'"{info.etag}"'}
    if info.version_id is not None:
        headers["x-amz-version-id"] = info.version_id
    for algorithm, value in info.checksums.items():
        headers[header_name(algorithm)] = value
    return web.Response(status=200, headers=headers)


async def _existing(req: S3Request) -> ObjectInfo:
    """The addressed object, if the caller owns it or its ACL lets the caller read it."""
    bucket = await req.bucket()
    assert req.key is not None
    if "versionId" in req.query:
        version = await live_version(req, bucket, req.key, req.query["versionId"])
        if not req.may(bucket.account, version.acl, Access.READ):
            raise AccessDenied()
        return version
    info = await req.services.objects.head(bucket.account, bucket.name, req.key)
    if info is None:
        if not req.may(bucket.account, bucket.acl, Access.READ):
            raise AccessDenied()  # whether a key exists is not for strangers to learn
        raise NoSuchKey(Key=req.key)
    if not req.may(bucket.account, info.acl, Access.READ):
        raise AccessDenied()
    return info


def _byte_range(req: S3Request, size: int) -> tuple[int, int] | None:
    header = req.http.headers.get("Range")
    try:
        return parse_byte_range(header, size)
    except UnsatisfiableRange:
        raise InvalidRange(ActualObjectSize=str(size), RangeRequested=header or "") from None


def _part_span(req: S3Request, info: ObjectInfo) -> tuple[int, int] | None:
    """The bytes of part N of a multipart object (a single-part object has part 1 only)."""
    raw = req.query["partNumber"]
    if "Range" in req.http.headers:
        raise InvalidRequest("Cannot specify both Range header and partNumber query parameter")
    number = decimal(raw)
    if number is None or not 1 <= number <= 10000:
        raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                              ArgumentName="partNumber", ArgumentValue=raw[:64])
    sizes = info.record.value.get("parts")
    if sizes is None:
        if number != 1:
            raise InvalidPartNumber(PartNumberRequested=raw, ActualPartCount="1")
        return None
    if number > len(sizes):
        raise InvalidPartNumber(PartNumberRequested=raw, ActualPartCount=str(len(sizes)))
    first = sum(sizes[:number - 1])
    return first, first + sizes[number - 1] - 1


async def head_object(req: S3Request) -> web.StreamResponse:
    return await _answer_object(req, with_body=False)


async def get_object(req: S3Request) -> web.StreamResponse:
    return await _answer_object(req, with_body=True)


async def _answer_object(req: S3Request, with_body: bool) -> web.StreamResponse:
    """GetObject and HeadObject: the same headers, conditions and range; GET adds the bytes."""
    info = await _existing(req)
    # A Swift large object reads assembled, with the ETag Swift gives it.
    body = await open_body(req.services.objects, req.services.buckets, info)
    headers = _object_headers(req, info) | {"ETag": f'"{body.etag}"'}
    status = evaluate_preconditions(req.http.headers.get, body.etag, info.last_modified)
    if status == 304:
        return web.Response(status=304, headers={"ETag": headers["ETag"],
                                                 "Last-Modified": headers["Last-Modified"]})
    if status == 412:
        raise PreconditionFailed(Condition="If-Match" if "If-Match" in req.http.headers
                                 else "If-Unmodified-Since")
    if "partNumber" in req.query:
        span = _part_span(req, info)
        headers["x-amz-mp-parts-count"] = str(len(info.record.value.get("parts", [info.size])))
    else:
        try:
            span = _byte_range(req, body.size)
        except InvalidRange:
            if body.size != 0:
                raise
            span = None  # S3 serves an empty object whole, whatever the range
    first, last = span if span else (0, body.size - 1)
    response = web.StreamResponse(status=206 if span else 200, headers=headers)
    response.content_length = last - first + 1 if body.size else 0
    if span:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{body.size}"
        # A checksum covers the whole object; S3 sends none with a part of it.
        for algorithm in info.checksums:
            response.headers.popall(header_name(algorithm), None)
    pieces = body.read(first, last) if with_body else None
    return await send_body(req.http, response, pieces, on_started=req.mark_response_started)


async def delete_object(req: S3Request) -> web.StreamResponse:
    bucket = await req.bucket_for(Access.WRITE)
    assert req.key is not None
    version_id = req.query.get("versionId")
    if version_id is not None and bucket.versioning is None and version_id != NULL_VERSION:
        raise InvalidArgument("Invalid version id specified", ArgumentName="versionId",
                              ArgumentValue=version_id[:64])
    shown, marker = await req.services.versions.delete(bucket.account, bucket.name, req.key,
                                                        bucket.versioning, version_id)
    headers = {}
    if shown is not None:
        headers["x-amz-version-id"] = shown
    if marker:
        headers["x-amz-delete-marker"] = "true"
    return web.Response(status=204, headers=headers)
