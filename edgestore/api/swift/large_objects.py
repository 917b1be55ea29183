"""Swift's large objects as objects.py sees them: which body a GET serves (the assembled
object, or with ?multipart-manifest=get the manifest itself) and the headers that go with
it, what a COPY copies, and the X-Object-Manifest / X-Static-Large-Object request headers.
"""

from __future__ import annotations

from typing import Any

from edgestore.api.swift import slo
from edgestore.api.swift.authorize import Op
from edgestore.api.swift.context import SwiftRequest
from edgestore.api.swift.errors import SwiftError
from edgestore.model.large_objects import (
    Body,
    bytes_body,
    dlo_manifest,
    is_slo,
    open_body,
    plain_body,
    read_manifest,
    segment_containers,
)
from edgestore.model.objects import ObjectInfo

__all__ = ["body_for_get", "copy_source", "manifest_attrs"]


def _wants_manifest(req: SwiftRequest) -> bool:
    return req.query.get("multipart-manifest") == "get"


async def body_for_get(req: SwiftRequest, info: ObjectInfo) -> tuple[Body, dict[str, str]]:
    """The body a GET/HEAD serves and the headers that replace the object's own. A large
    object's ETag is quoted, as Swift sends it (a plain object's is bare)."""
    objects = req.services.objects
    manifest = dlo_manifest(info)
    if is_slo(info):
        marker = {"X-Static-Large-Object": "True"}
        if not _wants_manifest(req):
            await _authorize_segments(req, info)
            body = await open_body(objects, req.services.buckets, info)
            return body, {**marker, "Etag": f'"{body.etag}"', "X-Manifest-Etag": info.etag}
        if req.query.get("format") == "raw":
            body = bytes_body(slo.raw_manifest(await read_manifest(objects, info)))
            return body, {**marker, "Etag": body.etag}
        return plain_body(objects, info), {**marker, "Content-Type": "application/json; charset=utf-8"}
    if manifest is not None:
        if _wants_manifest(req):
            return plain_body(objects, info), {"X-Object-Manifest": manifest}
        await _authorize_segments(req, info)
        body = await open_body(objects, req.services.buckets, info)
        return body, {"X-Object-Manifest": manifest, "Etag": f'"{body.etag}"'}
    return plain_body(objects, info), {}


async def _authorize_segments(req: SwiftRequest, info: ObjectInfo) -> None:
    """The caller must be allowed to read every container the segments come from."""
    for container in sorted(await segment_containers(req.services.objects, info)):
        await req.authorize(container, Op.READ)


async def copy_source(req: SwiftRequest, info: ObjectInfo) -> Body | None:
    """The assembled body a COPY of a large object writes, or None to copy the object
    record as it is (a plain object, or a manifest with ?multipart-manifest=get)."""
    if _wants_manifest(req) or not (is_slo(info) or dlo_manifest(info)):
        return None
    await _authorize_segments(req, info)
    return await open_body(req.services.objects, req.services.buckets, info)


def manifest_attrs(req: SwiftRequest, posted_to: ObjectInfo | None = None) -> dict[str, Any]:
    """The DLO attribute a PUT, or a POST to `posted_to`, sets: a POST without
    X-Object-Manifest drops it, as Swift's object server does. X-Static-Large-Object is
    set by a manifest PUT only."""
    if "X-Static-Large-Object" in req.http.headers:
        raise SwiftError(400, "X-Static-Large-Object is a reserved header. To create a static large object "
                              "add query param multipart-manifest=put.")
    value = req.http.headers.get("X-Object-Manifest")
    if value is None:
        return {"dlo": None} if posted_to is not None and dlo_manifest(posted_to) else {}
    container, _, prefix = value.partition("/")
    if not container or not prefix or "?" in value or "&" in value or prefix.startswith("/"):
        raise SwiftError(400, "X-Object-Manifest must be in the format container/prefix")
    return {"dlo": value}
