"""Tags: an object's (the x-amz-tagging header on writes, Get/Put/DeleteObjectTagging) and a
bucket's (Get/Put/DeleteBucketTagging, kept in the bucket record)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from edgestore.api.s3.bucket_settings import BucketSetting
from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import InvalidArgument, MalformedXML, S3Error
from edgestore.api.s3.versions_addressed import owned_version
from edgestore.api.s3.xml import document, element, parse_xml, xml_response
from edgestore.model.buckets import Buckets
from edgestore.model.objects import ObjectInfo
from edgestore.streams import BodyTooLarge, read_limited

__all__ = ["tags_from_header", "get_object_tagging", "put_object_tagging", "delete_object_tagging", "BUCKET_TAGGING"]

MAX_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 256
MAX_BODY = 64 * 1024


class InvalidTag(S3Error):
    code = "InvalidTag"
    status = 400
    message = "The tag provided was not a valid tag."


def _checked(tags: list[tuple[str, str]], most: int = MAX_TAGS) -> dict[str, str]:
    if len(tags) > most:
        raise InvalidTag(f"{'Object' if most == MAX_TAGS else 'Bucket'} tags cannot be greater than {most}")
    if len({k for k, _ in tags}) != len(tags):
        raise InvalidTag("Cannot provide multiple Tags with the same key")
    for key, value in tags:
        if not key or len(key) > MAX_KEY_CHARS or len(value) > MAX_VALUE_CHARS:
            raise InvalidTag("The TagKey or TagValue you have provided is too long or empty.")
    return dict(tags)


def tags_from_header(req: S3Request) -> dict[str, str] | None:
    """x-amz-tagging: "k1=v1&k2=v2" (URL-encoded), or None when absent."""
    raw = req.http.headers.get("x-amz-tagging")
    if raw is None:
        return None
    try:
        return _checked(parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw), errors="strict"))
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
                              "parameters without tag name duplicates.", ArgumentName="x-amz-tagging") from None


async def _object(req: S3Request) -> ObjectInfo:
    return (await owned_version(req))[1]


def _tagging_xml(tags: dict[str, str]) -> bytes:
    pairs = "".join(f"<Tag>{element('Key', k)}{element('Value', v)}</Tag>" for k, v in tags.items())
    return document("Tagging", f"<TagSet>{pairs}</TagSet>")


def _parse_tagging(body: bytes) -> list[tuple[str, str]]:
    pairs = []
    for tag in parse_xml(body, "Tagging").iter():
        if tag.tag.rsplit("}", 1)[-1] == "Tag":
            fields = {c.tag.rsplit("}", 1)[-1]: c.text or "" for c in tag}
            if "Key" not in fields:
                raise MalformedXML()
            pairs.append((fields["Key"], fields.get("Value", "")))
    return pairs


async def get_object_tagging(req: S3Request) -> web.StreamResponse:
    info = await _object(req)
    return xml_response(_tagging_xml(info.tags))


async def put_object_tagging(req: S3Request) -> web.StreamResponse:
    info = await _object(req)
    try:
        body = await read_limited(req.http.content, MAX_BODY)
    except BodyTooLarge:
        raise MalformedXML() from None
    await req.services.objects.update(req.bucket_name or "", info, tags=_checked(_parse_tagging(body)))
    return web.Response(status=200)


async def delete_object_tagging(req: S3Request) -> web.StreamResponse:
    info = await _object(req)
    await req.services.objects.update(req.bucket_name or "", info, tags={})
    return web.Response(status=204)


def _bucket_tags(body: bytes) -> tuple[dict[str, Any], ...]:
    """A bucket's tags as its record keeps them: ({"key": ..., "value": ...}, ...)."""
    return tuple({"key": k, "value": v} for k, v in _checked(_parse_tagging(body), MAX_BUCKET_TAGS).items())


def _bucket_tagging_xml(kept: tuple[dict[str, Any], ...]) -> bytes:
    return _tagging_xml({tag["key"]: tag["value"] for tag in kept})


BUCKET_TAGGING = BucketSetting("tagging", lambda bucket: bucket.tags, _bucket_tags, _bucket_tagging_xml,
                               Buckets.set_tags, MAX_BODY)
