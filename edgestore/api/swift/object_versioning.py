"""Swift's object versioning (X-Versions-Enabled), over the versions S3 keeps.

A container's X-Versions-Enabled is its bucket's S3 versioning state, true "Enabled" and
false "Suspended" (Swift's s3api maps them the same way), so a version written through
one API is seen through the other. Once set, a container shows the header as True or
False. The legacy modes (X-Versions-Location, X-History-Location, versioned.py) cannot be
combined with it: setting one on a container that has the other is 400.

- An object PUT into an enabled container makes a new version; the answer names it in
  X-Object-Version-Id, as GET and HEAD do ("null" for an object written without one).
- A DELETE writes a delete marker (its id in X-Object-Version-Id); the object is gone
  from GETs and listings, its versions stay.
- ?version-id=<id> addresses one version: GET, HEAD (404 for a delete marker), COPY (from
  it), DELETE (that version for good), PUT with an empty body (it becomes the current
  object again); POST is 400.
- GET of the container with ?versions lists every version (JSON only, as Swift), each
  with version_id and is_latest; marker with version_marker pages through them.

Where edgestore differs from Swift: version ids are edgestore's (20 hex digits that sort
newest first), not Swift timestamps; deleting the current version by id makes the newest
remaining version current (S3's rule; Swift leaves no current object); and a PUT that
restores a version writes it as a new version with a new id (Swift points the current
object at the old version and keeps its id).
"""

from __future__ import annotations

import collections
from contextlib import aclosing
from typing import Any, AsyncIterator

from aiohttp import web
from multidict import CIMultiDictProxy

from edgestore.api.swift.context import SwiftRequest, http_date, is_true, iso_time, x_timestamp
from edgestore.api.swift.errors import SwiftError
from edgestore.api.swift.listing import ListingParams, Subdir, listing_params, render_listing
from edgestore.api.swift.versioned import DELETE_MARKER_TYPE, copy_whole
from edgestore.model.buckets import Bucket, SwiftVersions
from edgestore.model.large_objects import listed_size
from edgestore.model.objects import NULL_VERSION, ObjectInfo
from edgestore.model.versions import ListedVersion

__all__ = ["HEADER", "CAPABILITIES", "requested_state", "check_modes", "state_headers", "version_headers",
           "written_headers", "addressed", "refuse_post", "delete_version", "restore_version", "versions_listing"]

HEADER = "X-Versions-Enabled"
VERSION_ID = "version-id"
CAPABILITIES: dict[str, object] = {}
_EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"    # a delete marker is a zero-byte object in Swift
_ENABLED, _SUSPENDED = "Enabled", "Suspended"


def requested_state(headers: CIMultiDictProxy[str]) -> str | None:
    """The S3 versioning state a container PUT/POST asks for, or None (no change)."""
    if HEADER not in headers:
        return None
    return _ENABLED if is_true(headers[HEADER]) else _SUSPENDED


def check_modes(state: str | None, legacy: SwiftVersions | None, legacy_off: bool, bucket: Bucket | None) -> None:
    """400 for a request that would leave a container with both kinds of versioning.
    ``legacy``: the legacy setting the request makes (None: none, or turning it off,
    which ``legacy_off`` says); ``bucket``: the container as it is (None: new)."""
    if state is not None and legacy is not None:
        raise SwiftError(400, f"Only one of {HEADER} or X-Versions-Location/X-History-Location may be specified")
    if state is not None and bucket is not None and bucket.swift_versions is not None and not legacy_off:
        raise SwiftError(400, "Cannot enable object versioning on a container that is already using the "
                              "legacy versioned writes feature.")
    if legacy is not None and bucket is not None and bucket.versioning is not None:
        raise SwiftError(400, "Cannot set X-Versions-Location or X-History-Location on a container with "
                              "object versioning (X-Versions-Enabled, or S3 versioning) set.")


def state_headers(bucket: Bucket) -> dict[str, str]:
    """The container header that shows the setting, once it has been set."""
    if bucket.versioning is None:
        return {}
    return {HEADER: "True" if bucket.versioning == _ENABLED else "False"}


def version_headers(bucket: Bucket, info: ObjectInfo) -> dict[str, str]:
    """X-Object-Version-Id of an object read from a container that has versioning."""
    if bucket.versioning is None:
        return {}
    return {"X-Object-Version-Id": info.version_id or NULL_VERSION}


def written_headers(bucket: Bucket, version_id: str | None) -> dict[str, str]:
    """X-Object-Version-Id of a write (a PUT, COPY or DELETE) that made a version, or a
    delete marker: only while versioning is enabled, as in Swift."""
    if bucket.versioning != _ENABLED or version_id is None:
        return {}
    return {"X-Object-Version-Id": version_id}


def _version_id(req: SwiftRequest, bucket: Bucket) -> str:
    version_id = req.query[VERSION_ID]
    if version_id == NULL_VERSION:
        return version_id
    if bucket.versioning is None:
        raise SwiftError(400, "version-aware operations require that the container is versioned")
    if not version_id.isascii() or not version_id.isalnum() or len(version_id) > 64:
        raise SwiftError(400, "Invalid version parameter")
    return version_id


async def addressed(req: SwiftRequest, bucket: Bucket, key: str) -> ObjectInfo:
    """The object a GET, HEAD or COPY reads: the version ?version-id names, or the current
    one; 404 if there is none, or if it is a delete marker."""
    if VERSION_ID not in req.query:
        info = await req.services.objects.head(bucket.account, bucket.name, key)
        if info is None:
            raise SwiftError(404)
        return info
    version_id = _version_id(req, bucket)
    info = await req.services.versions.get(bucket.account, bucket.name, key, version_id)
    if info is None:
        raise SwiftError(404)
    if info.delete_marker:
        raise SwiftError(404, None, {"X-Object-Version-Id": version_id})
    return info


def refuse_post(req: SwiftRequest) -> None:
    if VERSION_ID in req.query:
        raise SwiftError(400, "POST to a specific version is not allowed")


async def delete_version(req: SwiftRequest, bucket: Bucket, key: str) -> web.Response:
    """DELETE ?version-id: that version for good (no delete marker is written)."""
    version_id = _version_id(req, bucket)
    versions = req.services.versions
    if await versions.get(bucket.account, bucket.name, key, version_id) is None:
        raise SwiftError(404)
    await versions.delete(bucket.account, bucket.name, key, bucket.versioning, version_id)
    current = await req.services.objects.head(bucket.account, bucket.name, key)
    now_current = current.version_id if current is not None and current.version_id else NULL_VERSION
    return web.Response(status=204, headers={"X-Object-Version-Id": version_id,
                                             "X-Object-Current-Version-Id": now_current})


async def restore_version(req: SwiftRequest, bucket: Bucket, key: str) -> web.Response:
    """PUT ?version-id with an empty body: that version becomes the current object again
    (written as a new version, with all of its data and metadata)."""
    if req.http.content_length is None and "chunked" not in req.http.headers.get("Transfer-Encoding", "").lower():
        raise SwiftError(411)
    if req.http.content_length or await req.http.content.read(1):
        raise SwiftError(400, "PUT version-id requests require a zero byte body")
    version_id = _version_id(req, bucket)
    source = await req.services.versions.get(bucket.account, bucket.name, key, version_id)
    if source is None or source.delete_marker:
        raise SwiftError(404, "The specified version does not exist")
    restored = await copy_whole(req, source, bucket, key)
    return web.Response(status=201, headers={
        "Etag": restored.etag, "Last-Modified": http_date(restored.last_modified),
        "X-Timestamp": x_timestamp(restored.last_modified), **written_headers(bucket, restored.version_id)},
        content_type="text/html", charset="UTF-8")


def _entry(version: ListedVersion) -> dict[str, Any]:
    info = version.info
    if info.delete_marker:
        size, etag, content_type = 0, _EMPTY_MD5, DELETE_MARKER_TYPE
    else:
        size, etag, content_type = listed_size(info), info.etag, info.content_type
    return {"name": info.key, "bytes": size, "hash": etag, "last_modified": iso_time(info.last_modified),
            "content_type": content_type, "version_id": version.version_id, "is_latest": version.is_latest}


def _wants_json(req: SwiftRequest) -> bool:
    fmt = req.query.get("format", "").lower()
    if fmt:
        return fmt == "json"
    accept = req.http.headers.get("Accept", "")
    media = {m.split(";")[0].strip().lower() for m in accept.split(",") if m.strip()}
    return not media or bool(media & {"application/json", "application/*", "*/*"})


async def _page(versions: AsyncIterator[ListedVersion], params: ListingParams,
                version_marker: str | None) -> list[ListedVersion | Subdir]:
    """One page of a versions listing. The versions come in listing order (names in
    order, each name's newest version first); `marker` alone starts past every version of
    that name, with `version_marker` past that version of it. Reversed, the page is what
    comes before that place, last first."""
    marker, end_marker, prefix, delimiter = params.marker, params.end_marker, params.prefix, params.delimiter
    kept: collections.deque[ListedVersion | Subdir] = collections.deque(
        maxlen=params.limit if params.reverse else None)
    marker_version_seen = False
    last_subdir: str | None = None
    async for version in versions:
        name = version.info.key
        if not name.startswith(prefix):
            if name > prefix:
                break
            continue
        # Where this version stands against the place the marker names: -1 before, 1 after.
        if not marker:
            side = 1
        elif name != marker:
            side = -1 if name < marker else 1
        elif version_marker is None:
            side = 0
        elif marker_version_seen:
            side = 1
        else:
            marker_version_seen = version.version_id == version_marker
            side = 0 if marker_version_seen else -1
        if params.reverse:
            if (marker and side >= 0) or (end_marker and name <= end_marker):
                continue
        else:
            if end_marker and name >= end_marker:
                break
            if side <= 0:
                continue
        entry: ListedVersion | Subdir = version
        if delimiter and (at := name.find(delimiter, len(prefix))) >= 0:
            rolled = name[:at + len(delimiter)]
            if rolled == last_subdir:
                continue
            last_subdir, entry = rolled, Subdir(rolled)
        kept.append(entry)
        if not params.reverse and len(kept) >= params.limit:
            break
    return list(reversed(kept)) if params.reverse else list(kept)


async def versions_listing(req: SwiftRequest, bucket: Bucket, headers: dict[str, str]) -> web.Response:
    """GET ?versions: every version of the objects (delete markers included), JSON only."""
    if not _wants_json(req):
        raise SwiftError(406)
    params = listing_params(req.query, allow_path=False)
    version_marker = req.query.get("version_marker")
    if version_marker is not None and not params.marker:
        raise SwiftError(400, "version_marker param requires marker")
    if params.limit == 0:
        entries: list[ListedVersion | Subdir] = []
    else:
        async with aclosing(req.services.versions.listing(bucket.account, bucket.name, params.prefix)) as versions:
            entries = await _page(versions, params, version_marker)
    return render_listing("json", "container", bucket.name, entries, _entry, headers, req.http.method)
