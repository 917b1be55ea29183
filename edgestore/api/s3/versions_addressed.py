"""The object version a request addresses: the current one, or the one versionId names."""

from __future__ import annotations

from edgestore.api.s3.context import ADDRESSED, S3Request
from edgestore.api.s3.errors import AccessDenied, InvalidArgument, MethodNotAllowed, NoSuchKey, NoSuchVersion
from edgestore.model.acl import Access
from edgestore.model.buckets import Bucket
from edgestore.model.objects import NULL_VERSION, ObjectInfo

__all__ = ["find_version", "live_version", "owned_version"]


async def find_version(req: S3Request, bucket: Bucket, key: str, version_id: str,
                       effect: str | None = ADDRESSED) -> ObjectInfo:
    """A given version of an object (versionId=...), which may be a delete marker.
    ``effect``: the bucket policy's word on reading it, if not the addressed object."""
    if bucket.versioning is None and version_id != NULL_VERSION:
        raise InvalidArgument("Invalid version id specified", ArgumentName="versionId",
                              ArgumentValue=version_id[:64])
    info = await req.services.versions.get(bucket.account, bucket.name, key, version_id)
    if info is None:
        if not req.may(bucket.account, bucket.acl, Access.READ, effect):
            raise AccessDenied()
        raise NoSuchVersion(Key=key, VersionId=version_id)
    return info


async def live_version(req: S3Request, bucket: Bucket, key: str, version_id: str) -> ObjectInfo:
    """find_version, for what a delete marker cannot do (be read, tagged...): 405 for one."""
    info = await find_version(req, bucket, key, version_id)
    if info.delete_marker:
        raise MethodNotAllowed("The specified method is not allowed against this resource.",
                               Method=req.http.method, ResourceType="DeleteMarker")
    return info


async def owned_version(req: S3Request) -> tuple[Bucket, ObjectInfo]:
    """For the owner's sub-resources of an object (its ACL, its tags): the bucket, and the
    object's current version or the one versionId names (never a delete marker)."""
    bucket = await req.own_bucket()
    assert req.key is not None
    if "versionId" in req.query:
        return bucket, await live_version(req, bucket, req.key, req.query["versionId"])
    current = await req.services.objects.head(bucket.account, bucket.name, req.key)
    if current is None:
        raise NoSuchKey(Key=req.key)
    return bucket, current
