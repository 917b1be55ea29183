"""The S3 API's entry point: find the operation, authenticate, render every error as S3 XML.

Routing follows the S3 REST API: the level (service, bucket or object), the method and
the sub-resource in the query string pick the operation. Sub-resources we do not
implement get NotImplemented in S3's format, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from typing import Awaitable, Callable

from aiohttp import web

from edgestore import errors as domain
from edgestore.api.s3 import (
    acl,
    batch,
    bucket_policy,
    buckets,
    copy,
    cors,
    lifecycle,
    listing,
    multipart,
    objects,
    post_object,
    tagging,
    unconfigured,
    versioning,
)
from edgestore.api.s3.actions import action_of
from edgestore.api.s3.auth import authenticate_request
from edgestore.api.s3.context import S3Request, S3Services, parse_target
from edgestore.api.s3.errors import (
    AccessDenied,
    BadDigest,
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooSmall,
    InternalError,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    MethodNotAllowed,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    RequestTimeout,
    S3Error,
    ServiceUnavailable,
    error_xml,
)
from edgestore.api.s3.errors import NotImplemented as S3NotImplemented

__all__ = ["S3Api"]

log = logging.getLogger(__name__)

Handler = Callable[[S3Request], Awaitable[web.StreamResponse]]
_CORS_HEADERS = "edgestore.s3.cors_headers"  # request key: the CORS headers for its answer

# Bucket sub-resources S3 defines that we do not (yet) serve: answered NotImplemented.
_BUCKET_SUBRESOURCES = {
    "accelerate", "analytics", "cors", "encryption", "intelligent-tiering", "inventory",
    "lifecycle", "logging", "metrics", "notification", "object-lock", "ownershipControls",
    "policy", "policyStatus", "publicAccessBlock", "replication", "requestPayment", "tagging",
    "website", "metadataTable",
}
_OBJECT_SUBRESOURCES = {
    "retention", "legal-hold", "torrent", "restore", "select", "attributes",
}


def _pick(req: S3Request) -> Handler:
    method = req.http.method
    if req.bucket_name is None:
        if method in ("GET", "HEAD"):
            return buckets.list_buckets
        raise MethodNotAllowed()
    if method == "OPTIONS":
        return cors.preflight
    if req.key is None:
        if "policy" in req.query and method in ("GET", "PUT", "DELETE"):
            return {"GET": bucket_policy.get_bucket_policy, "PUT": bucket_policy.put_bucket_policy,
                    "DELETE": bucket_policy.delete_bucket_policy}[method]
        if "policyStatus" in req.query and method == "GET":
            return bucket_policy.get_bucket_policy_status
        for setting in (cors.SETTING, lifecycle.SETTING, tagging.BUCKET_TAGGING):
            if setting.subresource in req.query and (kept := setting.handler(method)) is not None:
                return kept
        if "location" in req.query and method == "GET":
            return buckets.get_bucket_location
        if "uploads" in req.query and method == "GET":
            return multipart.list_multipart_uploads
        if "delete" in req.query and method == "POST":
            return batch.delete_objects
        if post_object.is_post_object(req):
            return post_object.post_object
        if "acl" in req.query and method in ("GET", "PUT"):
            return acl.get_bucket_acl if method == "GET" else acl.put_bucket_acl
        if "versioning" in req.query and method in ("GET", "PUT"):
            return versioning.get_bucket_versioning if method == "GET" else versioning.put_bucket_versioning
        if "versions" in req.query and method == "GET":
            return versioning.list_object_versions
        probed = _BUCKET_SUBRESOURCES & req.query.keys()
        if probed:
            subresource = min(probed)
            if method == "GET" and subresource in unconfigured.NOT_CONFIGURED:
                return functools.partial(unconfigured.get_unconfigured, subresource=subresource)
            raise S3NotImplemented()
        table: dict[str, Handler] = {
            "PUT": buckets.create_bucket, "HEAD": buckets.head_bucket,
            "DELETE": buckets.delete_bucket,
            "GET": listing.list_objects_v2 if req.query.get("list-type") == "2" else listing.list_objects_v1,
        }
    else:
        if _OBJECT_SUBRESOURCES & req.query.keys():
            raise S3NotImplemented()
        if "acl" in req.query and method in ("GET", "PUT"):
            return acl.get_object_acl if method == "GET" else acl.put_object_acl
        if "tagging" in req.query and method in ("GET", "PUT", "DELETE"):
            return {"GET": tagging.get_object_tagging, "PUT": tagging.put_object_tagging,
                    "DELETE": tagging.delete_object_tagging}[method]
        copying = "x-amz-copy-source" in req.http.headers
        if "uploadId" in req.query:
            table = {"PUT": copy.upload_part_copy if copying else multipart.upload_part,
                     "POST": multipart.complete_multipart_upload,
                     "GET": multipart.list_parts, "DELETE": multipart.abort_multipart_upload}
        elif "uploads" in req.query:
            table = {"POST": multipart.create_multipart_upload}
        else:
            table = {"PUT": copy.copy_object if copying else objects.put_object, "GET": objects.get_object,
                     "HEAD": objects.head_object, "DELETE": objects.delete_object}
    handler = table.get(method)
    if handler is None:
        raise MethodNotAllowed()
    return handler


def _as_s3_error(exc: Exception) -> S3Error:
    """The one table from domain errors to S3 errors."""
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, domain.NoSuchBucket):
        return NoSuchBucket(BucketName=exc.bucket)
    if isinstance(exc, domain.NoSuchObject):
        return NoSuchKey(Key=exc.key)
    if isinstance(exc, domain.BucketExists):
        return BucketAlreadyOwnedByYou(BucketName=exc.bucket) if exc.owned_by_requester \
            else BucketAlreadyExists(BucketName=exc.bucket)
    if isinstance(exc, domain.BucketNotEmpty):
        return BucketNotEmpty(BucketName=exc.bucket)
    if isinstance(exc, domain.DigestMismatch):
        return BadDigest(ExpectedDigest=exc.expected.hex(), CalculatedDigest=exc.got.hex())
    if isinstance(exc, domain.BodyTooSlow):
        return RequestTimeout(str(exc))
    if isinstance(exc, domain.NoSuchUpload):
        return NoSuchUpload(UploadId=exc.upload_id)
    if isinstance(exc, domain.BadPartList):
        error = {"order": InvalidPartOrder, "too_small": EntityTooSmall}.get(exc.reason, InvalidPart)
        return error(str(exc), PartNumber=str(exc.part_number))
    if isinstance(exc, domain.ClusterError):
        return ServiceUnavailable(f"Not enough replicas answered: {exc}")
    if isinstance(exc, domain.ModelError):
        return InvalidArgument(str(exc))
    return InternalError()


class S3Api:
    def __init__(self, services: S3Services) -> None:
        self.services = services

    async def handle(self, http: web.Request) -> web.StreamResponse:
        request_id = secrets.token_hex(8).upper()
        resource = http.path
        req: S3Request | None = None
        try:
            bucket, key, query = parse_target(http, self.services.config.s3_domain)
            req = S3Request(http, self.services, request_id, bucket, key, query)
            origin = http.headers.get("Origin")
            if origin and bucket is not None and http.method != "OPTIONS":
                # The answer's CORS headers, whatever it turns out to be (on_response_prepare).
                http[_CORS_HEADERS] = cors.actual_request_headers(await self.services.buckets.lookup(bucket),
                                                                  origin, http.method)
            req.user = await authenticate_request(req)  # None: anonymous, for the ACLs to judge
            req.action = action_of(req)  # what a bucket policy judges
            try:
                handler = _pick(req)
            except S3NotImplemented:
                if req.user is None:  # strangers learn nothing, not even what we lack
                    raise AccessDenied() from None
                raise
            response = await handler(req)
        except ConnectionError as exc:
            # The client went away mid-answer: nothing to tell it. Cancelling is how aiohttp
            # is told to drop the connection quietly.
            log.info("S3 %s %s: client gone (%s) (request %s)", http.method, http.path, exc, request_id)
            raise asyncio.CancelledError() from exc
        except Exception as exc:  # the edge: every failure leaves as an S3 error
            if req is not None and req.response_started:
                log.warning("S3 %s %s cut short: %s (request %s)", http.method, http.path, exc, request_id)
                raise
            err = _as_s3_error(exc)
            if err.status >= 500 and not isinstance(exc, (domain.ClusterError, S3Error)):
                log.exception("S3 %s %s failed (request %s)", http.method, http.path, request_id)
            elif err.status >= 500:
                log.warning("S3 %s %s: %s (request %s)", http.method, http.path, exc, request_id)
            response = await self._error_response(http, err, resource, request_id)
        response.headers["x-amz-request-id"] = request_id
        response.headers["x-amz-id-2"] = request_id
        return response

    @staticmethod
    async def on_response_prepare(http: web.Request, response: web.StreamResponse) -> None:
        """Just before an S3 answer goes out: the CORS headers its request earned."""
        for name, value in http.get(_CORS_HEADERS, {}).items():
            response.headers[name] = value

    async def _error_response(self, http: web.Request, err: S3Error, resource: str,
                              request_id: str) -> web.StreamResponse:
        body = b"" if http.method == "HEAD" else error_xml(err, resource, request_id)
        response = web.Response(status=err.status, body=body, content_type="application/xml")
        # An error may come before the body was read: the client may still be sending it.
        # Closing the connection beats reading gigabytes we will not store.
        if http.can_read_body and not http.content.at_eof():
            response.force_close()
        return response
