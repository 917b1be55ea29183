"""Bucket listings as the S3 and Swift APIs show them: live objects with the few fields a
listing names, and common prefixes, from the coordinator's lean listing; and a bucket's
object count and bytes from the replicas' counters, without listing it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import AsyncGenerator

from edgestore.clock import ts_to_seconds
from edgestore.cluster.coordinator import Coordinator, CountersProbe
from edgestore.cluster.listing import CommonPrefix
from edgestore.store.records import KIND_OBJECT, bucket_record_name, placement_path

__all__ = ["ListedObject", "ListedPrefix", "list_bucket_pages", "list_bucket_names", "bucket_usage",
           "usage_probe", "CountersProbe"]

# The value fields a listing shows, in the order the rows carry them.
FIELDS = ("size", "etag", "content_type", "mtime_ts", "delete_at", "slo.size")
# ...and the user metadata too, when a listing shows it (MinIO's `metadata=true`).
FIELDS_WITH_META = FIELDS + ("meta",)
# What a listing of names only needs of a value: whether the object has expired.
NAME_FIELDS = ("delete_at",)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs three times as much
class ListedObject:
    key: str
    size: int
    etag: str
    last_modified: float
    content_type: str
    listed_size: int   # what a Swift listing shows: an SLO's assembled size, else `size`
    meta: dict[str, str] | None = None  # user metadata, when asked for


@dataclass(frozen=True, slots=True)
class ListedPrefix:
    """A common prefix (S3 CommonPrefixes, Swift subdir), ending with the delimiter."""
    key: str


async def list_bucket_pages(coordinator: Coordinator, account: str, bucket: str, prefix: str = "",
                            after: str | None = None, delimiter: str = "",
                            page_size: int = 1000, with_meta: bool = False, counters: CountersProbe | None = None
                            ) -> AsyncGenerator[list[ListedObject | ListedPrefix], None]:
    """Live objects of a bucket in key order from `after` (exclusive; past a whole common
    prefix when `after` is one), with a delimiter rolled up into common prefixes, and each
    object's user metadata if `with_meta`: a page at a time (no page is empty). `counters`
    (usage_probe's) asks the replicas for the bucket's counters with the first page."""
    base = f"{account}/{bucket}/"
    cut = len(base)
    now = time.time()
    async for items in coordinator.iter_listing_pages(
            KIND_OBJECT, placement_path(KIND_OBJECT, base), base + prefix, base + after if after is not None else None,
            delimiter, FIELDS_WITH_META if with_meta else FIELDS, page_size, now, counters):
        page: list[ListedObject | ListedPrefix] = []
        add = page.append
        for item in items:
            if isinstance(item, CommonPrefix):
                add(ListedPrefix(item.name[cut:]))
                continue
            name, ts, _, deleted, size, etag, content_type, mtime_ts, delete_at, slo_size = item[:10]
            if deleted or (delete_at is not None and delete_at <= now):
                continue
            add(ListedObject(name[cut:], int(size), str(etag), ts_to_seconds(mtime_ts if mtime_ts is not None else ts),
                             content_type or "binary/octet-stream",
                             int(slo_size) if slo_size is not None else int(size),
                             _user_meta(item[10]) if with_meta else None))
        if page:
            yield page


async def list_bucket_names(coordinator: Coordinator, account: str, bucket: str, prefix: str = "",
                            after: str | None = None, delimiter: str = "", page_size: int = 1000,
                            counters: CountersProbe | None = None) -> AsyncGenerator[list[str], None]:
    """list_bucket_pages for a listing that shows names only (Swift's plain text): the
    keys of live objects and the common prefixes (ending with the delimiter), in order.
    The replicas pick one field out of each value instead of six, and the page is a list
    of strings, not of ListedObjects."""
    base = f"{account}/{bucket}/"
    cut = len(base)
    now = time.time()
    async for items in coordinator.iter_listing_pages(
            KIND_OBJECT, placement_path(KIND_OBJECT, base), base + prefix, base + after if after is not None else None,
            delimiter, NAME_FIELDS, page_size, now, counters):
        page: list[str] = []
        add = page.append
        for item in items:
            if isinstance(item, CommonPrefix):
                add(item.name[cut:])
            elif not item[3] and (item[4] is None or item[4] > now):   # neither deleted nor expired
                add(item[0][cut:])
        if page:
            yield page


def _user_meta(raw: object) -> dict[str, str]:
    """A row's `meta` field: an object where a peer's SQLite wrote the page as JSON, JSON
    text where SQLite handed it to Python (json_extract of an object), None if unset."""
    if isinstance(raw, str):
        raw = json.loads(raw)
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def usage_probe(account: str, bucket: str) -> CountersProbe:
    """What a listing takes to read a bucket's counters with its first page, for bucket_usage."""
    return CountersProbe(bucket_record_name(account, bucket))


async def bucket_usage(coordinator: Coordinator, account: str, bucket: str,
                       probe: CountersProbe | None = None) -> tuple[int, int]:
    """(objects, bytes) of a bucket from its replicas' counters (eventually consistent): the
    ones a listing's probe found, else asked of a quorum."""
    if probe is not None and probe.found is not None:
        return probe.found
    name = bucket_record_name(account, bucket)
    return await coordinator.bucket_counters(placement_path(KIND_OBJECT, name + "/"), name)
