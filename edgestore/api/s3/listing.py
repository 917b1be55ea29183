"""ListObjects (v1) and ListObjectsV2: one listing walk, two answer shapes."""

from __future__ import annotations

import base64
import binascii
import re
from contextlib import aclosing
from dataclasses import dataclass, field

from aiohttp import web

from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import InvalidArgument
from edgestore.api.s3.xml import (
    document,
    element,
    encode_key,
    escape_text,
    iso8601,
    needs_escape,
    owner_xml,
    xml_response,
)
from edgestore.model.acl import Access
from edgestore.model.buckets import Bucket
from edgestore.model.listing import ListedObject, ListedPrefix

MAX_KEYS_LIMIT = 1000
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")


@dataclass
class Page:
    contents: list[ListedObject] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    last: str | None = None  # the last key or common prefix returned: where the next page starts


def _max_keys(req: S3Request) -> int:
    raw = req.query.get("max-keys", str(MAX_KEYS_LIMIT))
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument("Provided max-keys not an integer or within integer range",
                              ArgumentName="max-keys", ArgumentValue=raw) from None
    if value < 0:
        raise InvalidArgument("Argument maxKeys must be an integer between 0 and 2147483647",
                              ArgumentName="max-keys", ArgumentValue=raw)
    return min(value, MAX_KEYS_LIMIT)


def _encoding(req: S3Request) -> bool:
    encoding = req.query.get("encoding-type")
    if encoding not in (None, "url"):
        raise InvalidArgument("Invalid Encoding Method specified in Request",
                              ArgumentName="encoding-type", ArgumentValue=encoding or "")
    return encoding == "url"


async def walk(req: S3Request, bucket: Bucket, prefix: str, delimiter: str, max_keys: int,
               after: str | None, with_meta: bool = False) -> Page:
    """Up to max_keys keys and common prefixes after `after` (past all of a common prefix
    when `after` is one), in order. The replicas roll the common prefixes up."""
    page = Page()
    if max_keys == 0:
        return page
    pages = req.services.objects.listing_pages(bucket.account, bucket.name, prefix, after, delimiter,
                                               page_size=max_keys + 1, with_meta=with_meta)
    taken = 0
    async with aclosing(pages):
        async for entries in pages:
            if taken + len(entries) > max_keys:
                entries, page.truncated = entries[:max_keys - taken], True
            for entry in entries:
                if isinstance(entry, ListedPrefix):
                    page.prefixes.append(entry.key)
                else:
                    page.contents.append(entry)
            taken += len(entries)
            if entries:
                page.last = entries[-1].key
            if page.truncated:
                break
    return page


def _user_metadata_xml(info: ListedObject) -> str:
    """MinIO's listing extension (``metadata=true``): each object's Content-Type and
    ``x-amz-meta-*`` values, so that a client (the FUSE mount) needs no HEAD per key. A name
    that cannot be an XML element name is left out."""
    items = [element("Content-Type", info.content_type)]
    items += [element(f"X-Amz-Meta-{name}", value) for name, value in sorted((info.meta or {}).items())
              if _XML_NAME.fullmatch(name)]
    return "<UserMetadata>" + "".join(items) + "</UserMetadata>"


def _escaped(values: list[str]) -> list[str]:
    """escape_text of each value; one scan of them all when none needs it, the usual case."""
    return [escape_text(v) for v in values] if needs_escape("".join(values)) else values


def _contents_xml(page: Page, url: bool, with_owner: bool, account: str, with_meta: bool = False) -> str:
    contents = page.contents
    keys = _escaped([encode_key(info.key, url) for info in contents])
    etags = _escaped([info.etag for info in contents])
    # The same for every entry: built once per page.
    tail = element("StorageClass", "STANDARD") + (owner_xml(account) if with_owner else "")
    parts = [f"<Contents><Key>{key}</Key><LastModified>{iso8601(info.last_modified)}</LastModified>"
             f"<ETag>&quot;{etag}&quot;</ETag><Size>{info.size}</Size>{tail}"
             f"{_user_metadata_xml(info) if with_meta else ''}</Contents>"
             for info, key, etag in zip(contents, keys, etags, strict=True)]
    for common in page.prefixes:
        parts.append(f"<CommonPrefixes>{element('Prefix', encode_key(common, url))}</CommonPrefixes>")
    return "".join(parts)


def _token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("The continuation token provided is incorrect",
                              ArgumentName="continuation-token") from None


async def list_objects_v2(req: S3Request) -> web.StreamResponse:
    q = req.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    max_keys, url = _max_keys(req), _encoding(req)
    start_after = q.get("start-after")
    token = q.get("continuation-token")
    after = _untoken(token) if token is not None else start_after
    bucket = await req.bucket_for(Access.READ)
    with_meta = q.get("metadata") == "true"
    page = await walk(req, bucket, prefix, delimiter, max_keys, after, with_meta)
    body = [element("Name", bucket.name), element("Prefix", encode_key(prefix, url)),
            element("KeyCount", len(page.contents) + len(page.prefixes)), element("MaxKeys", max_keys)]
    if delimiter:
        body.append(element("Delimiter", encode_key(delimiter, url)))
    body.append(element("IsTruncated", page.truncated))
    if token is not None:
        body.append(element("ContinuationToken", token))
    if page.truncated and page.last is not None:
        body.append(element("NextContinuationToken", _token(page.last)))
    if start_after is not None:
        body.append(element("StartAfter", encode_key(start_after, url)))
    if url:
        body.append(element("EncodingType", "url"))
    body.append(_contents_xml(page, url, q.get("fetch-owner") == "true", bucket.account, with_meta))
    return xml_response(document("ListBucketResult", body))


async def list_objects_v1(req: S3Request) -> web.StreamResponse:
    q = req.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    max_keys, url = _max_keys(req), _encoding(req)
    marker = q.get("marker", "")
    bucket = await req.bucket_for(Access.READ)
    page = await walk(req, bucket, prefix, delimiter, max_keys, marker or None)
    body = [element("Name", req.bucket_name or ""), element("Prefix", encode_key(prefix, url)),
            element("Marker", encode_key(marker, url)), element("MaxKeys", max_keys)]
    if delimiter:
        body.append(element("Delimiter", encode_key(delimiter, url)))
    body.append(element("IsTruncated", page.truncated))
    # NextMarker is given only with a delimiter; without one, clients use the last key.
    if page.truncated and delimiter and page.last is not None:
        body.append(element("NextMarker", encode_key(page.last, url)))
    if url:
        body.append(element("EncodingType", "url"))
    body.append(_contents_xml(page, url, True, bucket.account))
    return xml_response(document("ListBucketResult", body))
