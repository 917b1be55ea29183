"""Get/Put/DeleteBucketPolicy and GetBucketPolicyStatus. Only the bucket's owner manages
its policy, and a policy's Deny never locks the owner out of doing so (AWS's root user
can always change it); model/policy.py checks and evaluates the document."""

from __future__ import annotations

from aiohttp import web

from edgestore.api.s3.checksums import check_small_body
from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import AccessDenied, S3Error
from edgestore.api.s3.errors import NotImplemented as S3NotImplemented
from edgestore.api.s3.unconfigured import NOT_CONFIGURED
from edgestore.api.s3.xml import document, element, xml_response
from edgestore.model.buckets import Bucket
from edgestore.model.policy import MAX_POLICY_BYTES, PolicyError, parse_policy
from edgestore.streams import BodyTooLarge, read_limited

__all__ = ["get_bucket_policy", "put_bucket_policy", "delete_bucket_policy", "get_bucket_policy_status"]


class MalformedPolicy(S3Error):
    code = "MalformedPolicy"
    status = 400
    message = "Policies must be valid JSON and the first byte must be '{'"


async def _owned(req: S3Request) -> Bucket:
    bucket = await req.bucket()
    if not req.owns(bucket.account):
        raise AccessDenied()
    return bucket


def _stored(bucket: Bucket) -> str:
    if bucket.policy is None:
        missing = NOT_CONFIGURED["policy"]
        assert not isinstance(missing, bytes)
        raise missing(BucketName=bucket.name)
    return bucket.policy


async def get_bucket_policy(req: S3Request) -> web.StreamResponse:
    return web.Response(status=200, text=_stored(await _owned(req)), content_type="application/json")


async def put_bucket_policy(req: S3Request) -> web.StreamResponse:
    bucket = await _owned(req)
    try:
        body = await read_limited(req.http.content, MAX_POLICY_BYTES)
    except BodyTooLarge:
        raise MalformedPolicy(f"Policies must be at most {MAX_POLICY_BYTES} bytes") from None
    check_small_body(req.http.headers, body)
    try:
        text = body.decode()
        parse_policy(text, bucket.name)
    except UnicodeDecodeError:
        raise MalformedPolicy() from None
    except PolicyError as exc:
        raise (S3NotImplemented if exc.unsupported else MalformedPolicy)(str(exc)) from None
    await req.services.buckets.set_policy(bucket, text)
    return web.Response(status=204)


async def delete_bucket_policy(req: S3Request) -> web.StreamResponse:
    bucket = await _owned(req)
    if bucket.policy is not None:
        await req.services.buckets.set_policy(bucket, None)
    return web.Response(status=204)


async def get_bucket_policy_status(req: S3Request) -> web.StreamResponse:
    bucket = await req.own_bucket()
    public = parse_policy(_stored(bucket), bucket.name).public()
    return xml_response(document("PolicyStatus", element("IsPublic", public)))
