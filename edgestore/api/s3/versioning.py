"""Bucket versioning: Get/PutBucketVersioning and ListObjectVersions."""

from __future__ import annotations

from aiohttp import web

from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import IllegalVersioningConfigurationException, InvalidArgument, MalformedXML
from edgestore.api.s3.xml import (
    children,
    decimal,
    document,
    element,
    encode_key,
    iso8601,
    owner_xml,
    parse_xml,
    xml_response,
)
from edgestore.model.acl import Access
from edgestore.streams import BodyTooLarge, read_limited

MAX_CONFIG_BODY = 64 * 1024
MAX_KEYS = 1000


async def get_bucket_versioning(req: S3Request) -> web.StreamResponse:
    bucket = await req.own_bucket()
    status = element("Status", bucket.versioning) if bucket.versioning else ""
    return xml_response(document("VersioningConfiguration", status))


async def put_bucket_versioning(req: S3Request) -> web.StreamResponse:
    bucket = await req.own_bucket()
    try:
        body = await read_limited(req.http.content, MAX_CONFIG_BODY)
    except BodyTooLarge:
        raise MalformedXML() from None
    fields = children(parse_xml(body, "VersioningConfiguration"))
    status = fields.get("Status")
    if status not in ("Enabled", "Suspended") or fields.get("MfaDelete", "Disabled") != "Disabled":
        raise IllegalVersioningConfigurationException()
    await req.services.buckets.set_versioning(bucket, status)
    return web.Response(status=200)


async def list_object_versions(req: S3Request) -> web.StreamResponse:
    bucket = await req.bucket_for(Access.READ)
    q = req.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, version_marker = q.get("key-marker", ""), q.get("version-id-marker", "")
    url = q.get("encoding-type") == "url"
    raw_max = decimal(q.get("max-keys", str(MAX_KEYS)))
    if raw_max is None:
        raise InvalidArgument("Provided max-keys not an integer or within integer range", ArgumentName="max-keys")
    max_keys = min(raw_max, MAX_KEYS)
    entries: list[str] = []
    prefixes: list[str] = []
    truncated = False
    next_key = next_version = ""
    passed_marker = not version_marker
    async for listed in req.services.versions.listing(bucket.account, bucket.name, prefix):
        key = listed.info.key
        if key < key_marker or (key == key_marker and not version_marker):
            continue
        if key == key_marker and not passed_marker:
            passed_marker = listed.version_id == version_marker
            continue
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                if prefixes and prefixes[-1] == common:
                    continue
                if len(entries) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                prefixes.append(common)
                next_key, next_version = common, ""
                continue
        if len(entries) + len(prefixes) >= max_keys:
            truncated = True
            break
        info = listed.info
        common_fields = (element("Key", encode_key(key, url)) + element("VersionId", listed.version_id)
                         + element("IsLatest", listed.is_latest)
                         + element("LastModified", iso8601(info.last_modified)) + owner_xml(bucket.account))
        if info.delete_marker:
            entries.append(f"<DeleteMarker>{common_fields}</DeleteMarker>")
        else:
            entries.append(f"<Version>{common_fields}{element('ETag', chr(34) + info.etag + chr(34))}"
                           f"{element('Size', info.size)}{element('StorageClass', 'STANDARD')}</Version>")
        next_key, next_version = key, listed.version_id
    body = [element("Name", bucket.name), element("Prefix", encode_key(prefix, url)),
            element("KeyMarker", encode_key(key_marker, url)), element("VersionIdMarker", version_marker),
            element("MaxKeys", max_keys)]
    if delimiter:
        body.append(element("Delimiter", encode_key(delimiter, url)))
    body.append(element("IsTruncated", truncated))
    if truncated:
        body += [element("NextKeyMarker", encode_key(next_key, url)), element("NextVersionIdMarker", next_version)]
    if url:
        body.append(element("EncodingType", "url"))
    body += entries
    body += [f"<CommonPrefixes>{element('Prefix', encode_key(p, url))}</CommonPrefixes>" for p in prefixes]
    return xml_response(document("ListVersionsResult", body))
