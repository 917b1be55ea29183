"""Server-side copies: CopyObject (no data moves) and UploadPartCopy (with ranges)."""

from __future__ import annotations

from typing import AsyncIterator
from urllib.parse import unquote

from aiohttp import web

from edgestore.api.http import UnsatisfiableRange, evaluate_preconditions, parse_byte_range
from edgestore.api.s3.acl import requested_acl
from edgestore.api.s3.checksums import header_name
from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import (
    AccessDenied,
    InvalidArgument,
    InvalidRange,
    InvalidRequest,
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
)
from edgestore.api.s3.multipart import part_number, upload_of
from edgestore.api.s3.objects import object_attrs, write_precondition
from edgestore.api.s3.tagging import tags_from_header
from edgestore.api.s3.versions_addressed import find_version
from edgestore.api.s3.xml import document, element, iso8601, xml_response
from edgestore.model.acl import Access
from edgestore.model.objects import ObjectInfo

COPY_SOURCE_PREFIX = "x-amz-copy-source-"


async def _source(req: S3Request) -> ObjectInfo:
    """The object named by x-amz-copy-source, readable by the caller, its conditions met."""
    raw = req.http.headers["x-amz-copy-source"]
    path, _, query = raw.partition("?")
    try:
        path = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise InvalidArgument("Invalid copy source encoding", ArgumentName="x-amz-copy-source") from None
    bucket_name, _, key = path.lstrip("/").partition("/")
    if not bucket_name or not key:
        raise InvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                              ArgumentName="x-amz-copy-source", ArgumentValue=raw[:256])
    version_id = query[len("versionId="):] if query.startswith("versionId=") else None
    if query and version_id is None:
        raise InvalidArgument("Unsupported copy source parameter", ArgumentName="x-amz-copy-source",
                              ArgumentValue=raw[:256])
    bucket = await req.services.buckets.lookup(bucket_name)
    if bucket is None:
        raise NoSuchBucket(BucketName=bucket_name)
    effect = req.policy_effect(bucket, "s3:GetObjectVersion" if version_id else "s3:GetObject", key)
    if version_id:
        info: ObjectInfo | None = await find_version(req, bucket, key, version_id, effect)
        assert info is not None
        if info.delete_marker:
            raise InvalidRequest("The source of a copy request may not specifically refer to a delete marker "
                                 "by version id.")
    else:
        info = await req.services.objects.head(bucket.account, bucket.name, key)
    if info is None:
        if not req.may(bucket.account, bucket.acl, Access.READ, effect):
            raise AccessDenied()
        raise NoSuchKey(Key=key)
    if not req.may(bucket.account, info.acl, Access.READ, effect):
        raise AccessDenied()
    if evaluate_preconditions(req.http.headers.get, info.etag, info.last_modified, COPY_SOURCE_PREFIX):
        raise PreconditionFailed(Condition="x-amz-copy-source-If-Match")
    return info


def _copy_result(root: str, info: ObjectInfo) -> bytes:
    checksums = "".join(element(f"Checksum{a.upper()}", v) for a, v in info.checksums.items())
    return document(root, [element("LastModified", iso8601(info.last_modified)),
                           element("ETag", f'"{info.etag}"'), checksums])


async def copy_object(req: S3Request) -> web.StreamResponse:
    bucket = await req.bucket_for(Access.WRITE)
    assert req.key is not None
    source = await _source(req)
    directive = req.http.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise InvalidArgument("Unknown metadata directive.", ArgumentName="x-amz-metadata-directive",
                              ArgumentValue=directive)
    same_object = source.record.name == f"{bucket.account}/{bucket.name}/{req.key}"
    if same_object and directive == "COPY":
        raise InvalidRequest("This copy request is illegal because it is trying to copy an object to itself "
                             "without changing the object's metadata, storage class, website redirect "
                             "location or encryption attributes.")
    attrs = object_attrs(req) if directive == "REPLACE" else None
    tagging = req.http.headers.get("x-amz-tagging-directive", "COPY").upper()
    if tagging not in ("COPY", "REPLACE"):
        raise InvalidArgument("Unknown tagging directive.", ArgumentName="x-amz-tagging-directive",
                              ArgumentValue=tagging)
    tags = (tags_from_header(req) or {}) if tagging == "REPLACE" else None
    info = await req.services.objects.copy(source, bucket.account, bucket.name, req.key, attrs,
                                           requested_acl(req),
                                           before_commit=write_precondition(req, bucket.account, bucket.name),
                                           versioning=bucket.versioning, tags=tags)
    headers = {header_name(a): v for a, v in info.checksums.items()}
    if info.version_id is not None:
        headers["x-amz-version-id"] = info.version_id
    if source.version_id is not None:
        headers["x-amz-copy-source-version-id"] = source.version_id
    response = xml_response(_copy_result("CopyObjectResult", info))
    response.headers.update(headers)
    return response


async def upload_part_copy(req: S3Request) -> web.StreamResponse:
    number = part_number(req)
    upload = await upload_of(req)
    source = await _source(req)
    header = req.http.headers.get("x-amz-copy-source-range")
    try:
        span = parse_byte_range(header, source.size) if header else None
    except UnsatisfiableRange:
        raise InvalidRange(ActualObjectSize=str(source.size), RangeRequested=header or "") from None
    if header and span is None:
        raise InvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last",
                              ArgumentName="x-amz-copy-source-range", ArgumentValue=header)
    first, last = span if span else (0, source.size - 1)

    async def body() -> AsyncIterator[bytes]:
        async for piece in req.services.objects.read(source, first, last):
            yield piece

    part = await req.services.uploads.put_part(upload, number, body())
    return xml_response(document("CopyPartResult", [element("LastModified", iso8601(part.last_modified)),
                                                    element("ETag", f'"{part.etag}"')]))
