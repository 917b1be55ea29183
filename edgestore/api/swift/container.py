"""Container operations: PUT, POST, DELETE, HEAD, GET (list objects).

A container is an S3 bucket of the account, so both APIs see the same objects. One
deviation from Swift: bucket names are unique in the cluster (S3 needs that), so PUT of
a name another account already holds answers 409 where Swift would create it.
"""

from __future__ import annotations

import operator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from edgestore import errors as domain
from edgestore.api.swift import object_versioning
from edgestore.api.swift.acl import clean_acl
from edgestore.api.swift.context import SwiftRequest, iso_time, x_timestamp
from edgestore.api.swift.errors import SwiftError
from edgestore.api.swift.listing import listing_format, listing_params, render_listing, select_pages
from edgestore.api.swift.metadata import merge_meta, meta_headers, sent_meta
from edgestore.api.swift.versioned import VERSIONS_OFF, requested_versions, versions_headers
from edgestore.clock import ts_to_seconds
from edgestore.model.buckets import Bucket, SwiftVersions
from edgestore.model.listing import CountersProbe, ListedObject, ListedPrefix

__all__ = ["ContainerStats", "container_stats", "container_put", "container_post", "container_delete",
           "container_head", "container_get", "enforce_quota", "MAX_CONTAINER_NAME_BYTES", "SECRET_META"]

MAX_CONTAINER_NAME_BYTES = 256
MAX_PAGE = 10000  # items per replica per internal page when a listing must read its whole range
# Metadata only owners see (Swift's swift_owner_headers): keys that sign temp URLs.
SECRET_META = ("temp-url-key", "temp-url-key-2")
_ACL_HEADERS = {"read": "X-Container-Read", "write": "X-Container-Write"}
# Swift's container_quotas: metadata that caps a container's bytes and object count.
_QUOTAS = {"quota-bytes": "Invalid bytes quota.", "quota-count": "Invalid count quota."}


@dataclass(frozen=True)
class ContainerStats:
    count: int
    bytes_used: int


async def container_stats(req: SwiftRequest, bucket: Bucket, probe: CountersProbe | None = None) -> ContainerStats:
    """From the replicas' counters, not by listing: eventually consistent, as Swift's are.
    `probe`: a listing's, which may have read them already."""
    count, size = await req.services.objects.usage(bucket.account, bucket.name, probe)
    return ContainerStats(count, size)


def _container_headers(req: SwiftRequest, bucket: Bucket, stats: ContainerStats) -> dict[str, str]:
    headers = {"X-Container-Object-Count": str(stats.count), "X-Container-Bytes-Used": str(stats.bytes_used),
               "X-Timestamp": x_timestamp(ts_to_seconds(bucket.created_ts)), "Accept-Ranges": "bytes"}
    owner = req.owner
    headers.update(meta_headers(bucket.meta, "container", () if owner else SECRET_META))
    headers.update(versions_headers(bucket.swift_versions))
    headers.update(object_versioning.state_headers(bucket))
    if owner:
        for header, acl in ((_ACL_HEADERS["read"], bucket.read_acl), (_ACL_HEADERS["write"], bucket.write_acl)):
            if acl:
                headers[header] = acl
    return headers


def _sent_acls(req: SwiftRequest) -> dict[str, str]:
    """The ACLs the request sets ("" removes), cleaned as Swift stores them; 400 if malformed."""
    acls: dict[str, str] = {}
    for which, header in _ACL_HEADERS.items():
        if header in req.http.headers:
            try:
                acls[which] = clean_acl(header, req.http.headers[header])
            except ValueError as exc:
                raise SwiftError(400, str(exc)) from None
        elif f"X-Remove-{header[2:]}" in req.http.headers:
            acls[which] = ""
    return acls


def _check_quota_meta(meta: dict[str, str]) -> None:
    for name, complaint in _QUOTAS.items():
        value = meta.get(name, "")
        if value and not (value.isascii() and value.isdigit()):
            raise SwiftError(400, complaint)


async def enforce_quota(req: SwiftRequest, container_name: str, size: int) -> None:
    """Before an object PUT of ``size`` bytes: 413 if the container's quotas would be
    exceeded (by its counters, read only when a quota is set). A chunked upload counts as
    0 bytes, as in Swift."""
    bucket = await req.services.buckets.lookup(container_name)
    if bucket is None or not any(bucket.meta.get(name) for name in _QUOTAS):
        return
    stats = await container_stats(req, bucket)
    max_bytes, max_count = (bucket.meta.get(name, "") for name in _QUOTAS)
    if max_bytes.isdigit() and stats.bytes_used + size > int(max_bytes):
        raise SwiftError(413, "Upload exceeds quota.")
    if max_count.isdigit() and stats.count + 1 > int(max_count):
        raise SwiftError(413, "Upload exceeds quota.")


@dataclass(frozen=True)
class _Changes:
    """What a container PUT or POST sends, checked."""
    meta: dict[str, str]
    acls: dict[str, str]
    versions: SwiftVersions | None  # legacy versioning. None: unchanged; VERSIONS_OFF: turned off
    versioning: str | None          # X-Versions-Enabled, as an S3 versioning state; None: unchanged

    def check_modes(self, bucket: Bucket | None) -> None:
        """400 if the container would have both kinds of versioning."""
        legacy = self.versions if self.versions != VERSIONS_OFF else None
        object_versioning.check_modes(self.versioning, legacy, self.versions == VERSIONS_OFF, bucket)


def _sent_changes(req: SwiftRequest) -> _Changes:
    meta = sent_meta(req.http.headers, "container", removals=True)
    _check_quota_meta(meta)
    acls = _sent_acls(req)
    if not req.owner:  # (an account ACL's read-write user) Swift's owner-only headers are dropped
        acls = {}
        meta = {name: value for name, value in meta.items() if name not in SECRET_META}
    return _Changes(meta, acls, requested_versions(req.http.headers, MAX_CONTAINER_NAME_BYTES),
                    object_versioning.requested_state(req.http.headers))


def _stored_versions(sent: SwiftVersions | None, stored: SwiftVersions | None) -> SwiftVersions | None:
    if sent is None:
        return stored
    return None if sent == VERSIONS_OFF else sent


async def _update(req: SwiftRequest, changes: _Changes) -> None:
    """Merge into the stored record, read fresh (not from the lookup cache) so that a
    change made through another node moments ago is kept."""
    assert req.container is not None
    bucket = await req.services.buckets.lookup(req.container, use_cache=False)
    if bucket is None or bucket.account != req.account:
        raise SwiftError(404)
    changes.check_modes(bucket)
    if not changes.meta and not changes.acls and changes.versions is None and changes.versioning is None:
        return
    merged = merge_meta(bucket.meta, changes.meta, "x-container-meta-")
    await req.services.buckets.set_swift_meta(bucket, merged, changes.acls.get("read", bucket.read_acl),
                                              changes.acls.get("write", bucket.write_acl),
                                              _stored_versions(changes.versions, bucket.swift_versions),
                                              changes.versioning or bucket.versioning)


async def container_put(req: SwiftRequest) -> web.StreamResponse:
    assert req.container is not None
    changes = _sent_changes(req)
    changes.check_modes(None)
    try:
        await req.services.buckets.create(
            req.account, req.container, meta=merge_meta({}, changes.meta, "x-container-meta-"),
            read_acl=changes.acls.get("read", ""), write_acl=changes.acls.get("write", ""),
            swift_versions=_stored_versions(changes.versions, None), versioning=changes.versioning)
    except domain.BucketExists as exc:
        if exc.owned_by_requester:
            await _update(req, changes)
            return web.Response(status=202)
        raise SwiftError(409, "Container name is taken by another account "
                              "(edgestore container names are unique in the cluster)") from exc
    return web.Response(status=201)


async def container_post(req: SwiftRequest) -> web.StreamResponse:
    await _update(req, _sent_changes(req))
    return web.Response(status=204)


async def container_delete(req: SwiftRequest) -> web.StreamResponse:
    bucket = await req.own_container()
    await req.services.buckets.delete(bucket.account, bucket.name)
    return web.Response(status=204)


async def container_head(req: SwiftRequest) -> web.StreamResponse:
    bucket = await req.own_container()
    return web.Response(status=204, headers=_container_headers(req, bucket, await container_stats(req, bucket)))


_KEY: Callable[[ListedObject | ListedPrefix], str] = operator.attrgetter("key")
_NAME: Callable[[str], str] = str


def object_entry(info: ListedObject) -> dict[str, Any]:
    return {"name": info.key, "hash": info.etag, "bytes": info.listed_size, "content_type": info.content_type,
            "last_modified": iso_time(info.last_modified)}


async def container_get(req: SwiftRequest) -> web.StreamResponse:
    bucket = await req.own_container()
    if "versions" in req.query:
        headers = _container_headers(req, bucket, await container_stats(req, bucket))
        return await object_versioning.versions_listing(req, bucket, headers)
    params = listing_params(req.query, allow_path=True)
    fmt = listing_format(req.http, req.query)
    after = params.marker if params.marker and not params.reverse and params.marker >= params.prefix else None
    # The replicas roll up what select() folds into subdirs (`path=` lists no subdirs,
    # so its "/" rolls up too, and select() drops those).
    delimiter = "/" if params.path_only else params.delimiter
    page_size = params.limit if not params.reverse else MAX_PAGE
    objects = req.services.objects
    # The counters (for the headers) come with the listing's first page, in the same requests.
    probe = objects.usage_probe(bucket.account, bucket.name)
    if fmt == "plain":   # names only: the replicas need not pick each object's fields out
        names = objects.listing_names(bucket.account, bucket.name, params.prefix, after, delimiter, page_size,
                                      probe)
        async with aclosing(names):
            entries: list[Any] = await select_pages(names, params, _NAME)
    else:
        pages = objects.listing_pages(bucket.account, bucket.name, params.prefix, after, delimiter, page_size,
                                      counters=probe)
        async with aclosing(pages):
            entries = await select_pages(pages, params, _KEY)
    headers = _container_headers(req, bucket, await container_stats(req, bucket, probe))
    return render_listing(fmt, "container", bucket.name, entries, object_entry, headers, req.http.method,
                          _NAME if fmt == "plain" else _KEY)
