"""Swift's versioned writes: a container whose X-Versions-Location (stack mode) or
X-History-Location (history mode) names an archive container of the same account keeps
the versions an overwrite or a delete would lose.

- An object PUT (or COPY, or SLO manifest PUT) over an existing object first copies the
  current object into the archive as `<3 hex digits: the name's length in bytes><name>/
  <its X-Timestamp, 10.5 digits>` — a metadata-only copy here, no bytes move — right before
  the new object is committed (so a failed upload archives nothing).
- A DELETE in history mode archives the current object the same way, then writes a zero-byte
  delete marker (content type DELETE_MARKER_TYPE) named by the time of the delete, then deletes.
- A DELETE in stack mode puts the newest archived version back in place and removes it from
  the archive; with none, it is a plain delete. A delete marker on top means "deleted in
  history mode": if an object is current, it is deleted; if not, the version under the marker
  comes back and both leave the archive.
Archiving into a missing archive container (or one another account holds) is 412. The
caller needs write access to the versioned container only, as in Swift.
"""

from __future__ import annotations

import time
from collections import deque
from typing import AsyncIterator
from urllib.parse import quote, unquote

from multidict import CIMultiDictProxy

from edgestore.api.swift.context import SwiftRequest
from edgestore.api.swift.errors import SwiftError
from edgestore.model.acl import DEFAULT_ACL
from edgestore.model.buckets import Bucket, SwiftVersions
from edgestore.model.listing import ListedObject
from edgestore.model.objects import ObjectInfo

__all__ = ["VERSIONS_OFF", "DELETE_MARKER_TYPE", "CAPABILITIES", "requested_versions",
           "versions_headers", "archive_current", "versioned_delete", "copy_whole"]

DELETE_MARKER_TYPE = "application/x-deleted;swift_versions_deleted=1"
CAPABILITIES = {"allowed_flags": ["x-versions-location", "x-history-location"]}
STACK, HISTORY = "stack", "history"
_HEADERS = {STACK: "X-Versions-Location", HISTORY: "X-History-Location"}
# How far back a stack-mode DELETE looks for a version to restore (Swift walks them all;
# versions that vanish under it are rare, and memory stays bounded).
MAX_VERSIONS_WALKED = 1000


VERSIONS_OFF = SwiftVersions("", "")  # what a request that turns versioning off asks for


def requested_versions(headers: CIMultiDictProxy[str], max_name_bytes: int) -> SwiftVersions | None:
    """What a container PUT/POST asks: a new setting, VERSIONS_OFF, or None (no change).
    An empty value or X-Remove-Versions/History-Location turns versioning off; setting
    both modes at once is 400; setting wins over removing, as in Swift. The archive's name
    is URL-decoded, and must be a container name (412)."""
    sent = {mode: headers[header] for mode, header in _HEADERS.items() if header in headers}
    if len(sent) == 2:
        if sent[STACK] and sent[HISTORY]:
            raise SwiftError(400, "Only one of X-Versions-Location or X-History-Location may be specified")
        sent = {mode: value for mode, value in sent.items() if value} or {STACK: ""}
    if sent:
        [(mode, value)] = sent.items()
        if not value:
            return VERSIONS_OFF
        location = unquote(value, errors="strict")
        if "/" in location or not location or len(location.encode()) > max_name_bytes:
            raise SwiftError(412, "Invalid container name in " + _HEADERS[mode])
        return SwiftVersions(mode, location)
    if any(headers.get(f"X-Remove-{header[2:]}") for header in _HEADERS.values()):
        return VERSIONS_OFF
    return None


def versions_headers(versions: SwiftVersions | None) -> dict[str, str]:
    """The container header that shows the setting (its value URL-encoded, as sent)."""
    if versions is None or not versions.mode:
        return {}
    return {_HEADERS[versions.mode]: quote(versions.location, safe="")}


def _prefix(obj: str) -> str:
    return f"{len(obj.encode()):03x}{obj}/"


def _version_name(obj: str, seconds: float) -> str:
    return f"{_prefix(obj)}{seconds:016.5f}"


async def _archive(req: SwiftRequest, versions: SwiftVersions) -> Bucket:
    archive = await req.services.buckets.lookup(versions.location)
    if archive is None or archive.account != req.account:
        raise SwiftError(412)  # as Swift: the archive container is missing (or not ours)
    return archive


async def copy_whole(req: SwiftRequest, info: ObjectInfo, bucket: Bucket, key: str) -> ObjectInfo:
    """``info`` as object ``key`` of ``bucket``, all of it (a manifest stays a manifest)."""
    attrs: dict[str, object] = {"content_type": info.content_type, "meta": info.meta, "headers": info.headers}
    if info.delete_at is not None:
        attrs["delete_at"] = info.delete_at
    return await req.services.objects.copy(info, bucket.account, bucket.name, key, attrs, DEFAULT_ACL,
                                            versioning=bucket.versioning)


async def archive_current(req: SwiftRequest, bucket: Bucket, obj: str) -> None:
    """Before an overwrite of ``obj``: its current version into the archive, if any."""
    versions = bucket.swift_versions
    if versions is None:
        return
    current = await req.services.objects.head(bucket.account, bucket.name, obj)
    if current is None:
        return
    await copy_whole(req, current, await _archive(req, versions), _version_name(obj, current.last_modified))


async def versioned_delete(req: SwiftRequest, bucket: Bucket, obj: str) -> bool:
    """The versioning part of a DELETE of ``obj``: True if that was the whole DELETE (a
    version was put back, or a delete marker went), False if the current object is to be
    deleted as usual now (404 if there is none)."""
    versions = bucket.swift_versions
    assert versions is not None
    objects = req.services.objects
    current = await objects.head(bucket.account, bucket.name, obj)
    if versions.mode == HISTORY:
        archive = await _archive(req, versions)
        if current is not None:
            await copy_whole(req, current, archive, _version_name(obj, current.last_modified))
        # (Written even when there was nothing to delete, as Swift does.)
        await objects.put(archive.account, archive.name, _version_name(obj, time.time()), _empty_body(),
                          {"content_type": DELETE_MARKER_TYPE, "meta": {}, "headers": {}, "acl": DEFAULT_ACL},
                          versioning=archive.versioning)
        return False
    found = await req.services.buckets.lookup(versions.location)
    if found is None or found.account != req.account:
        return False  # no archive, no versions: a plain delete
    archive = found
    stack = await _newest_versions(req, archive, obj)
    while stack:
        name, content_type = stack.pop()
        if content_type == DELETE_MARKER_TYPE:
            if current is not None:
                return False  # back to the deleted state the marker records
            await _restore_below(req, bucket, archive, obj, stack)
            await objects.delete_unversioned(archive.account, archive.name, name)
            return True
        if await _restore(req, bucket, archive, obj, name):
            await objects.delete_unversioned(archive.account, archive.name, name)
            return True
    return False


async def _empty_body() -> AsyncIterator[bytes]:
    yield b""


async def _newest_versions(req: SwiftRequest, archive: Bucket, obj: str) -> deque[tuple[str, str]]:
    """The archived versions of ``obj``, oldest first, at most MAX_VERSIONS_WALKED newest."""
    found: deque[tuple[str, str]] = deque(maxlen=MAX_VERSIONS_WALKED)
    async for page in req.services.objects.listing_pages(archive.account, archive.name, prefix=_prefix(obj)):
        for entry in page:
            if isinstance(entry, ListedObject):
                found.append((entry.key, entry.content_type))
    return found


async def _restore(req: SwiftRequest, bucket: Bucket, archive: Bucket, obj: str, name: str) -> bool:
    """Archived version ``name`` copied back as ``obj``; False if it is gone meanwhile."""
    version = await req.services.objects.head(archive.account, archive.name, name)
    if version is None:
        return False
    await copy_whole(req, version, bucket, obj)
    return True


async def _restore_below(req: SwiftRequest, bucket: Bucket, archive: Bucket, obj: str,
                         stack: deque[tuple[str, str]]) -> None:
    """Under a delete marker with no current object: the newest version below it comes back
    and leaves the archive (unless another marker comes first: nothing to restore)."""
    while stack:
        name, content_type = stack.pop()
        if content_type == DELETE_MARKER_TYPE:
            return
        if await _restore(req, bucket, archive, obj, name):
            await req.services.objects.delete_unversioned(archive.account, archive.name, name)
            return
