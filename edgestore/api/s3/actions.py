"""The IAM action an S3 request is (`s3:GetObject`, `s3:ListBucket`...), as bucket policies
name them."""

from __future__ import annotations

from typing import Mapping

from edgestore.api.s3.context import S3Request

__all__ = ["action_of"]

# Bucket sub-resources: (GET action, PUT action, DELETE action).
_BUCKET_SETTINGS = {
    "acl": ("s3:GetBucketAcl", "s3:PutBucketAcl", None),
    "versioning": ("s3:GetBucketVersioning", "s3:PutBucketVersioning", None),
    "cors": ("s3:GetBucketCORS", "s3:PutBucketCORS", "s3:PutBucketCORS"),
    "lifecycle": ("s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration", "s3:PutLifecycleConfiguration"),
    "tagging": ("s3:GetBucketTagging", "s3:PutBucketTagging", "s3:PutBucketTagging"),
    "policy": ("s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"),
    "policyStatus": ("s3:GetBucketPolicyStatus", None, None),
    "location": ("s3:GetBucketLocation", None, None),
    "versions": ("s3:ListBucketVersions", None, None),
    "uploads": ("s3:ListBucketMultipartUploads", None, None),
}
_OBJECT_SETTINGS = {
    "acl": ("s3:GetObjectAcl", "s3:PutObjectAcl", None),
    "tagging": ("s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObjectTagging"),
}
_COLUMN = {"GET": 0, "HEAD": 0, "PUT": 1, "DELETE": 2}


def _setting(table: Mapping[str, tuple[str | None, ...]], req: S3Request) -> str | None:
    for name, actions in table.items():
        if name in req.query and req.http.method in _COLUMN:
            return actions[_COLUMN[req.http.method]]
    return None


def action_of(req: S3Request) -> str | None:
    """The action a bucket policy judges this request as; None when no policy applies
    (the service level, and requests no handler takes)."""
    method, versioned = req.http.method, "versionId" in req.query
    if req.bucket_name is None:
        return None
    if req.key is None:
        if method == "POST":
            return "s3:DeleteObject" if "delete" in req.query else "s3:PutObject"  # (a form upload)
        setting = _setting(_BUCKET_SETTINGS, req)
        if setting is not None:
            return setting
        return {"PUT": "s3:CreateBucket", "DELETE": "s3:DeleteBucket"}.get(method, "s3:ListBucket")
    setting = _setting(_OBJECT_SETTINGS, req)
    if setting is not None:
        return setting + ("Version" if versioned and method != "PUT" and "Tagging" not in setting else "")
    if "uploadId" in req.query:
        return {"GET": "s3:ListMultipartUploadParts", "DELETE": "s3:AbortMultipartUpload"}.get(method, "s3:PutObject")
    if method in ("GET", "HEAD"):
        return "s3:GetObjectVersion" if versioned else "s3:GetObject"
    if method == "DELETE":
        return "s3:DeleteObjectVersion" if versioned else "s3:DeleteObject"
    return "s3:PutObject"
