"""Container operations: PUT, DELETE, HEAD, GET (list objects).

A container is an S3 bucket of the account, so both APIs see the same objects. One
deviation from Swift: bucket names are unique in the cluster (S3 needs that), so PUT of
a name another account already holds answers 409 where Swift would create it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

from aiohttp import web

from edgestore import errors as domain
from edgestore.api.swift.context import SwiftRequest, iso_time, x_timestamp
from edgestore.api.swift.errors import SwiftError
from edgestore.api.swift.listing import listing_format, listing_params, render_listing, select
from edgestore.clock import ts_to_seconds
from edgestore.model.buckets import Bucket
from edgestore.model.large_objects import listed_size
from edgestore.model.objects import ObjectInfo

__all__ = ["ContainerStats", "container_stats", "container_put", "container_delete", "container_head",
           "container_get", "MAX_CONTAINER_NAME_BYTES"]

MAX_CONTAINER_NAME_BYTES = 256


@dataclass(frozen=True)
class ContainerStats:
    count: int
    bytes_used: int


async def container_stats(req: SwiftRequest, bucket: Bucket) -> ContainerStats:
    """Counted by listing (see account.py's note on cost)."""
    count = size = 0
    async for info in req.services.objects.list(bucket.account, bucket.name):
        count += 1
        size += info.size
    return ContainerStats(count, size)


def _stats_headers(bucket: Bucket, stats: ContainerStats) -> dict[str, str]:
    return {"X-Container-Object-Count": str(stats.count), "X-Container-Bytes-Used": str(stats.bytes_used),
            "X-Timestamp": x_timestamp(ts_to_seconds(bucket.created_ts)), "Accept-Ranges": "bytes"}


async def container_put(req: SwiftRequest) -> web.StreamResponse:
    assert req.container is not None
    try:
        await req.services.buckets.create(req.account, req.container)
    except domain.BucketExists as exc:
        if exc.owned_by_requester:
            return web.Response(status=202)
        raise SwiftError(409, "Container name is taken by another account "
                              "(edgestore container names are unique in the cluster)") from exc
    return web.Response(status=201)


async def container_delete(req: SwiftRequest) -> web.StreamResponse:
    bucket = await req.own_container()
    await req.services.buckets.delete(bucket.account, bucket.name)
    return web.Response(status=204)


async def container_head(req: SwiftRequest) -> web.StreamResponse:
    bucket = await req.own_container()
    return web.Response(status=204, headers=_stats_headers(bucket, await container_stats(req, bucket)))


def object_entry(info: ObjectInfo) -> dict[str, Any]:
    return {"name": info.key, "hash": info.etag, "bytes": listed_size(info), "content_type": info.content_type,
            "last_modified": iso_time(info.last_modified)}


async def container_get(req: SwiftRequest) -> web.StreamResponse:
    bucket = await req.own_container()
    params = listing_params(req.query, allow_path=True)
    fmt = listing_format(req.http, req.query)
    headers = _stats_headers(bucket, await container_stats(req, bucket))
    after = params.marker if params.marker and not params.reverse and params.marker >= params.prefix else None

    async def names() -> AsyncIterator[tuple[str, ObjectInfo]]:
        async for info in req.services.objects.list(bucket.account, bucket.name, params.prefix, after):
            yield info.key, info

    entries = await select(names(), params)
    return render_listing(fmt, "container", bucket.name, entries, object_entry, headers, req.http.method)
