"""Multipart upload: Create, UploadPart, Complete, Abort, ListParts, ListMultipartUploads."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from edgestore.api.s3.body import request_body
from edgestore.api.s3.checksums import ALGORITHMS, decode_expected, header_name, new_checksum
from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import InvalidArgument, InvalidRequest, MalformedXML
from edgestore.api.s3.objects import object_attrs, write_precondition
from edgestore.api.s3.xml import (
    children,
    decimal,
    document,
    element,
    encode_key,
    iso8601,
    local_name,
    owner_xml,
    parse_xml,
    xml_response,
)
from edgestore.model.acl import Access
from edgestore.model.multipart import MAX_PARTS, Part, Upload
from edgestore.streams import BodyTooLarge, read_limited

MAX_COMPLETE_BODY = 4 * 1024 * 1024  # 10,000 parts with checksums fit with room to spare
MAX_LIST_PARTS = 1000


async def upload_of(req: S3Request) -> Upload:
    bucket = await req.bucket_for(Access.WRITE)
    assert req.key is not None
    return await req.services.uploads.get(bucket.account, bucket.name, req.key, req.query["uploadId"])


def _checksum_algorithm(req: S3Request) -> str | None:
    raw = req.http.headers.get("x-amz-checksum-algorithm")
    if raw is None:
        return None
    if raw.lower() not in ALGORITHMS:
        raise InvalidRequest("Checksum algorithm provided is unsupported.")
    return raw.lower()


async def create_multipart_upload(req: S3Request) -> web.StreamResponse:
    bucket = await req.bucket_for(Access.WRITE)
    assert req.key is not None
    attrs = object_attrs(req)
    algorithm = _checksum_algorithm(req)
    if algorithm:
        attrs["checksum_algorithm"] = algorithm
    upload = await req.services.uploads.create(bucket.account, bucket.name, req.key, attrs)
    headers = {"x-amz-checksum-algorithm": algorithm.upper()} if algorithm else {}
    response = xml_response(document("InitiateMultipartUploadResult", [
        element("Bucket", bucket.name), element("Key", req.key), element("UploadId", upload.upload_id)]))
    response.headers.update(headers)
    return response


def part_number(req: S3Request) -> int:
    raw = req.query.get("partNumber", "")
    number = decimal(raw)
    if number is None or not 1 <= number <= MAX_PARTS:
        raise InvalidArgument(f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive",
                              ArgumentName="partNumber", ArgumentValue=raw[:64])
    return number


async def upload_part(req: S3Request) -> web.StreamResponse:
    number = part_number(req)
    upload = await upload_of(req)
    body = request_body(req)
    part = await req.services.uploads.put_part(upload, number, body.chunks(), late_attrs=body.late_attrs,
                                               expected_md5=body.content_md5)
    headers = {"ETag": f'"{part.etag}"'}
    for algorithm, value in part.checksums.items():
        headers[header_name(algorithm)] = value
    return web.Response(status=200, headers=headers)


def _parse_complete(body: bytes) -> list[tuple[int, str]]:
    wanted = []
    for part in parse_xml(body, "CompleteMultipartUpload"):
        if local_name(part) != "Part":
            raise MalformedXML()
        fields = children(part)
        number, etag = decimal(fields.get("PartNumber", "")), fields.get("ETag")
        if number is None or etag is None:
            raise MalformedXML()
        wanted.append((number, etag))
    if len(wanted) > MAX_PARTS:
        raise MalformedXML()
    return wanted


def _composite_checksum(algorithm: str) -> Any:
    """S3's checksum of a multipart object: the checksum of the parts' checksums, "-N"."""
    def combine(parts: list[Part]) -> dict[str, str]:
        if not all(algorithm in part.checksums for part in parts):
            return {}
        outer = new_checksum(algorithm)
        for part in parts:
            outer.update(decode_expected(algorithm, part.checksums[algorithm]))
        return {algorithm: f"{base64.b64encode(outer.digest()).decode()}-{len(parts)}"}
    return combine


async def complete_multipart_upload(req: S3Request) -> web.StreamResponse:
    upload = await upload_of(req)
    try:
        wanted = _parse_complete(await read_limited(req.http.content, MAX_COMPLETE_BODY))
    except BodyTooLarge:
        raise MalformedXML() from None
    algorithm = upload.attrs.get("checksum_algorithm")
    bucket = await req.bucket_for(Access.WRITE)
    info = await req.services.uploads.complete(
        upload, wanted, _composite_checksum(algorithm) if algorithm else None,
        before_commit=write_precondition(req, upload.account, upload.bucket), versioning=bucket.versioning)
    location = f"{req.http.scheme}://{req.http.host}/{upload.bucket}/{encode_key(upload.key, True)}"
    response = xml_response(document("CompleteMultipartUploadResult", [
        element("Location", location), element("Bucket", upload.bucket), element("Key", upload.key),
        element("ETag", f'"{info.etag}"')]))
    if info.version_id is not None:
        response.headers["x-amz-version-id"] = info.version_id
    return response


async def abort_multipart_upload(req: S3Request) -> web.StreamResponse:
    upload = await upload_of(req)
    await req.services.uploads.abort(upload)
    return web.Response(status=204)


def _int_param(req: S3Request, name: str, default: int, limit: int) -> int:
    raw = req.query.get(name, str(default))
    value = decimal(raw)
    if value is None:
        raise InvalidArgument(f"Provided {name} not an integer or within integer range",
                              ArgumentName=name, ArgumentValue=raw[:64])
    return min(value, limit)


async def list_parts(req: S3Request) -> web.StreamResponse:
    upload = await upload_of(req)
    max_parts = _int_param(req, "max-parts", MAX_LIST_PARTS, MAX_LIST_PARTS)
    marker = _int_param(req, "part-number-marker", 0, MAX_PARTS)
    parts = [p for p in await req.services.uploads.parts(upload) if p.number > marker]
    page, truncated = parts[:max_parts], len(parts) > max_parts
    body = [element("Bucket", upload.bucket), element("Key", upload.key), element("UploadId", upload.upload_id),
            f"<Initiator>{element('ID', upload.account)}{element('DisplayName', upload.account)}</Initiator>",
            owner_xml(upload.account), element("StorageClass", "STANDARD"),
            element("PartNumberMarker", marker), element("MaxParts", max_parts), element("IsTruncated", truncated)]
    if page:
        body.append(element("NextPartNumberMarker", page[-1].number))
    for part in page:
        checksums = "".join(element(f"Checksum{a.upper()}", v) for a, v in part.checksums.items())
        body.append(f"<Part>{element('PartNumber', part.number)}{element('LastModified', iso8601(part.last_modified))}"
                    f"{element('ETag', chr(34) + part.etag + chr(34))}{element('Size', part.size)}{checksums}</Part>")
    return xml_response(document("ListPartsResult", body))


async def list_multipart_uploads(req: S3Request) -> web.StreamResponse:
    bucket = await req.bucket_for(Access.READ)
    prefix = req.query.get("prefix", "")
    max_uploads = _int_param(req, "max-uploads", 1000, 1000)
    key_marker, id_marker = req.query.get("key-marker", ""), req.query.get("upload-id-marker", "")
    url = req.query.get("encoding-type") == "url"
    uploads = [u for u in await req.services.uploads.in_bucket(bucket.account, bucket.name)
               if u.key.startswith(prefix)
               and (u.key > key_marker or (u.key == key_marker and id_marker and u.upload_id > id_marker))]
    page, truncated = uploads[:max_uploads], len(uploads) > max_uploads
    body = [element("Bucket", bucket.name), element("KeyMarker", encode_key(key_marker, url)),
            element("UploadIdMarker", id_marker), element("Prefix", encode_key(prefix, url)),
            element("MaxUploads", max_uploads), element("IsTruncated", truncated)]
    if truncated and page:
        body += [element("NextKeyMarker", encode_key(page[-1].key, url)),
                 element("NextUploadIdMarker", page[-1].upload_id)]
    for upload in page:
        body.append(
            f"<Upload>{element('Key', encode_key(upload.key, url))}{element('UploadId', upload.upload_id)}"
            f"<Initiator>{element('ID', upload.account)}{element('DisplayName', upload.account)}</Initiator>"
            f"{owner_xml(upload.account)}{element('StorageClass', 'STANDARD')}"
            f"{element('Initiated', iso8601(upload.initiated))}</Upload>")
    return xml_response(document("ListMultipartUploadsResult", body))


