"""Service- and bucket-level S3 operations: ListBuckets, Create/Head/DeleteBucket, location."""

from __future__ import annotations

from aiohttp import web

from edgestore.api.s3.acl import requested_acl
from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import InvalidBucketName, MalformedXML
from edgestore.api.s3.xml import document, element, iso8601, owner_xml, parse_xml, xml_response
from edgestore.clock import ts_to_seconds
from edgestore.model.acl import Access
from edgestore.model.buckets import valid_bucket_name
from edgestore.streams import BodyTooLarge, read_limited

MAX_CONFIG_BODY = 64 * 1024


async def list_buckets(req: S3Request) -> web.StreamResponse:
    account = req.account
    entries = []
    async for bucket in req.services.buckets.list_for_account(account):
        entries.append(f"<Bucket>{element('Name', bucket.name)}"
                       f"{element('CreationDate', iso8601(ts_to_seconds(bucket.created_ts)))}</Bucket>")
    return xml_response(document("ListAllMyBucketsResult",
                                 owner_xml(account) + "<Buckets>" + "".join(entries) + "</Buckets>"))


async def create_bucket(req: S3Request) -> web.StreamResponse:
    name = req.bucket_name
    assert name is not None
    account = req.account  # strangers are refused before anything else is looked at
    if not valid_bucket_name(name):
        raise InvalidBucketName(BucketName=name)
    try:
        body = await read_limited(req.http.content, MAX_CONFIG_BODY)
    except BodyTooLarge:
        raise MalformedXML() from None
    if body.strip():
        _check_create_configuration(body)
    await req.services.buckets.create(account, name, requested_acl(req))
    return web.Response(status=200, headers={"Location": f"/{name}"})


def _check_create_configuration(body: bytes) -> None:
    """CreateBucketConfiguration: we accept any location constraint (one site, one region)."""
    parse_xml(body, "CreateBucketConfiguration")


async def head_bucket(req: S3Request) -> web.StreamResponse:
    await req.bucket_for(Access.READ)
    return web.Response(status=200, headers={"x-amz-bucket-region": req.services.config.region})


async def delete_bucket(req: S3Request) -> web.StreamResponse:
    bucket = await req.own_bucket()
    await req.services.buckets.delete(bucket.account, bucket.name)
    return web.Response(status=204)


async def get_bucket_location(req: S3Request) -> web.StreamResponse:
    await req.own_bucket()
    region = req.services.config.region
    # us-east-1 is reported as an empty constraint, as AWS does.
    inner = "" if region == "us-east-1" else region
    return xml_response(document("LocationConstraint", inner))
