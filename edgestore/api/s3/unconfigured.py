"""Answers for bucket configurations we do not keep (CORS, lifecycle, policy, ...).

Clients probe these. Reading one answers what S3 answers for a bucket that has none
configured (mostly a 404 with a specific code, which clients treat as "none"); writing one
is NotImplemented, so nobody believes a policy or a lifecycle rule is in force when it is not.
"""

from __future__ import annotations

from aiohttp import web

from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import S3Error
from edgestore.api.s3.xml import document, element, xml_response

__all__ = ["NOT_CONFIGURED", "get_unconfigured"]


def _missing(code: str, message: str) -> type[S3Error]:
    return type(code, (S3Error,), {"code": code, "status": 404, "message": message})


# Sub-resource -> the error S3 gives when the bucket has none, or the empty document it returns.
NOT_CONFIGURED: dict[str, type[S3Error] | bytes] = {
    "cors": _missing("NoSuchCORSConfiguration", "The CORS configuration does not exist"),
    "lifecycle": _missing("NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"),
    "policy": _missing("NoSuchBucketPolicy", "The bucket policy does not exist"),
    "tagging": _missing("NoSuchTagSet", "The TagSet does not exist"),
    "website": _missing("NoSuchWebsiteConfiguration", "The specified bucket does not have a website configuration"),
    "encryption": _missing("ServerSideEncryptionConfigurationNotFoundError",
                           "The server side encryption configuration was not found"),
    "object-lock": _missing("ObjectLockConfigurationNotFoundError",
                            "Object Lock configuration does not exist for this bucket"),
    "replication": _missing("ReplicationConfigurationNotFoundError", "The replication configuration was not found"),
    "ownershipControls": _missing("OwnershipControlsNotFoundError", "The bucket ownership controls were not found"),
    "publicAccessBlock": _missing("NoSuchPublicAccessBlockConfiguration",
                                  "The public access block configuration was not found"),
    "logging": document("BucketLoggingStatus", ""),
    "notification": document("NotificationConfiguration", ""),
    "accelerate": document("AccelerateConfiguration", ""),
    "requestPayment": document("RequestPaymentConfiguration", element("Payer", "BucketOwner")),
}


async def get_unconfigured(req: S3Request, subresource: str) -> web.StreamResponse:
    await req.own_bucket()
    answer = NOT_CONFIGURED[subresource]
    if isinstance(answer, bytes):
        return xml_response(answer)
    raise answer(BucketName=req.bucket_name or "")
