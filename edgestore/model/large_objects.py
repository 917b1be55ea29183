"""Large objects: Swift's static (SLO) and dynamic (DLO) manifests read as one body.

An SLO is an object whose record carries `slo` ({"etag", "size"} of the assembled
object) and whose data is the JSON manifest Swift stores: a list of segments, each
{"name": "/container/object", "bytes", "hash", "content_type", "last_modified",
["range": "a-b"], ["sub_slo": true]} or {"data": base64}. A DLO is an object whose
record carries `dlo` (the X-Object-Manifest value "container/prefix", URL-quoted as
clients send it): its segments are whatever the container lists under the prefix when
it is read. Both APIs read a large object through `open_body`, so an SLO written over
Swift reads back assembled over S3 too.

Reading streams segment by segment (each segment a block at a time, see Objects.read):
nothing larger than a block and one manifest is held. A segment that is missing or
changed since the manifest was written raises BrokenLargeObject, before the first byte
(the APIs answer 409) or mid-stream (the connection is cut, as Swift does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import unquote

from edgestore.errors import BrokenLargeObject, NoSuchBucket, NoSuchObject
from edgestore.model.buckets import Buckets
from edgestore.model.objects import ObjectInfo, Objects
from edgestore.store.records import split_object_name

__all__ = ["Body", "open_body", "plain_body", "bytes_body", "is_slo", "listed_size", "dlo_manifest", "read_manifest",
           "segment_length", "split_segment_path", "decode_data_segment", "MAX_RECURSION_DEPTH", "MAX_MANIFEST_BYTES"]

# Swift's limits: manifests nest at most this deep, and a stored manifest is at most this big.
MAX_RECURSION_DEPTH = 10
MAX_MANIFEST_BYTES = 2 * 1024 * 1024
# Sub-manifests kept while one body is read (a multi-range GET may walk one several times);
# bounded so a wide tree of manifests cannot grow a node's memory.
SUB_MANIFEST_CACHE = 20

Reader = Callable[[int, int], AsyncIterator[bytes]]


@dataclass(frozen=True)
class Body:
    """What a GET serves: its size, its ETag (bare hex) and its bytes first..last."""
    size: int
    etag: str
    read: Reader
    kind: str = "plain"  # "plain", "slo" or "dlo"


def is_slo(info: ObjectInfo) -> bool:
    return bool(info.record.value.get("slo"))


def listed_size(info: ObjectInfo) -> int:
    """The size a Swift listing shows: an SLO's assembled size (what a GET returns), any
    other object's own (a DLO's manifest is listed as the manifest, as Swift does)."""
    return int(info.record.value["slo"]["size"]) if is_slo(info) else info.size


def dlo_manifest(info: ObjectInfo) -> str | None:
    value = info.record.value.get("dlo")
    return str(value) if value else None


def plain_body(objects: Objects, info: ObjectInfo) -> Body:
    """The object's own bytes (a manifest's, for a large object)."""
    def read(first: int, last: int) -> AsyncIterator[bytes]:
        return objects.read(info, first, last)
    return Body(info.size, info.etag, read)


def bytes_body(data: bytes) -> Body:
    async def read(first: int, last: int) -> AsyncIterator[bytes]:
        yield data[first:last + 1]
    return Body(len(data), hashlib.md5(data).hexdigest(), read)


async def open_body(objects: Objects, buckets: Buckets, info: ObjectInfo) -> Body:
    """The body a plain GET of this object serves: an SLO or a DLO assembled from its
    segments, any other object as it is."""
    account, _, _ = split_object_name(info.record.name)
    if is_slo(info):
        slo = info.record.value["slo"]
        reader = _SloReader(objects, buckets, account, info)
        return Body(int(slo["size"]), str(slo["etag"]), reader.read, "slo")
    manifest = dlo_manifest(info)
    if manifest is not None:
        return await _open_dlo(objects, buckets, account, manifest)
    return plain_body(objects, info)


async def read_manifest(objects: Objects, info: ObjectInfo) -> list[dict[str, Any]]:
    """An SLO's stored segment list (our own JSON, at most MAX_MANIFEST_BYTES)."""
    data = b"".join([piece async for piece in objects.read(info)])
    try:
        segments = json.loads(data)
    except ValueError:
        raise BrokenLargeObject(f"the manifest of {info.key!r} is not JSON") from None
    if not isinstance(segments, list):
        raise BrokenLargeObject(f"the manifest of {info.key!r} is not a list")
    return segments


def split_segment_path(path: str) -> tuple[str, str]:
    """"/container/object" -> (container, object); ("", "") when it names no object."""
    container, _, key = path.lstrip("/").partition("/")
    return (container, key) if container and key else ("", "")


def segment_length(segment: dict[str, Any]) -> int:
    """How many bytes one stored manifest entry contributes."""
    if "data" in segment:
        return len(base64.b64decode(segment["data"]))
    if segment.get("range"):
        first, last = (int(x) for x in str(segment["range"]).split("-"))
        return last - first + 1
    return int(segment["bytes"])


async def _segment(objects: Objects, buckets: Buckets, account: str, container: str,
                   key: str) -> ObjectInfo | None:
    """A segment object of the account, or None (missing, or in another account's container)."""
    bucket = await buckets.lookup(container)
    if bucket is None or bucket.account != account:
        return None
    return await objects.head(account, container, key)


class _SloReader:
    """Reads an SLO's bytes; its manifest is read on the first read (a HEAD needs none)."""

    def __init__(self, objects: Objects, buckets: Buckets, account: str, manifest: ObjectInfo) -> None:
        self._objects = objects
        self._buckets = buckets
        self._account = account
        self._manifest = manifest
        self._segments: list[dict[str, Any]] | None = None
        self._subs: dict[str, list[dict[str, Any]]] = {}

    async def read(self, first: int, last: int) -> AsyncIterator[bytes]:
        if self._segments is None:
            self._segments = await read_manifest(self._objects, self._manifest)
        async for piece in self._walk(self._segments, first, last, depth=1):
            yield piece

    async def _walk(self, segments: list[dict[str, Any]], first: int, last: int,
                    depth: int) -> AsyncIterator[bytes]:
        """The bytes first..last of the object these segments make, fetched in order."""
        for segment in segments:
            length = segment_length(segment)
            if first >= length:
                first, last = first - length, last - length
                continue
            if last < 0:
                return
            lo, hi = max(first, 0), min(last, length - 1)
            if "data" in segment:
                yield base64.b64decode(segment["data"])[lo:hi + 1]
            else:
                start = int(str(segment["range"]).split("-")[0]) if segment.get("range") else 0
                if segment.get("sub_slo"):
                    if depth >= MAX_RECURSION_DEPTH:
                        raise BrokenLargeObject("max recursion depth of nested manifests exceeded")
                    subs = await self._sub_manifest(str(segment["name"]))
                    async for piece in self._walk(subs, start + lo, start + hi, depth + 1):
                        yield piece
                else:
                    info = await self._checked(segment)
                    async for piece in _read_segment(self._objects, info, start + lo, start + hi):
                        yield piece
            first, last = first - length, last - length

    async def _checked(self, segment: dict[str, Any]) -> ObjectInfo:
        """The segment as it is now, if it is still what the manifest recorded."""
        name = str(segment["name"])
        info = await _segment(self._objects, self._buckets, self._account, *split_segment_path(name))
        if info is None:
            raise BrokenLargeObject(f"segment {name} is missing")
        if info.etag != segment.get("hash") or info.size != int(segment["bytes"]):
            raise BrokenLargeObject(f"segment {name} changed since the manifest was written")
        return info

    async def _sub_manifest(self, name: str) -> list[dict[str, Any]]:
        cached = self._subs.get(name)
        if cached is not None:
            return cached
        info = await _segment(self._objects, self._buckets, self._account, *split_segment_path(name))
        if info is None or not is_slo(info):
            raise BrokenLargeObject(f"nested manifest {name} is missing")
        segments = await read_manifest(self._objects, info)
        if len(self._subs) >= SUB_MANIFEST_CACHE:
            self._subs.pop(next(iter(self._subs)))
        self._subs[name] = segments
        return segments


async def _read_segment(objects: Objects, info: ObjectInfo, first: int, last: int) -> AsyncIterator[bytes]:
    try:
        async for piece in objects.read(info, first, last):
            yield piece
    except NoSuchObject:  # replaced or deleted between its HEAD and its read
        raise BrokenLargeObject(f"segment {info.key!r} disappeared while it was read") from None


async def segment_containers(objects: Objects, info: ObjectInfo) -> set[str]:
    """The containers a large object's segments are read from (an SLO's listed ones, a
    DLO's one): a reader must be allowed to read each of them, as in Swift, or a manifest
    would open a private container to whoever may read the manifest."""
    if is_slo(info):
        return {c for c, _ in (split_segment_path(str(s.get("path", ""))) for s in await read_manifest(objects, info))
                if c}
    manifest = dlo_manifest(info)
    return {parse_dlo(manifest)[0]} if manifest is not None else set()


def parse_dlo(manifest: str) -> tuple[str, str]:
    container, _, prefix = manifest.partition("/")
    return unquote(container), unquote(prefix)


async def _open_dlo(objects: Objects, buckets: Buckets, account: str, manifest: str) -> Body:
    """A DLO's size and ETag come from a listing of its segments now; its bytes from a
    second listing when read, stopped at that size (segments added in between are not
    served; segments gone in between cut the body short, which the reader reports)."""
    container, prefix = parse_dlo(manifest)
    bucket = await buckets.lookup(container)
    if bucket is None or bucket.account != account:
        raise NoSuchBucket(container)
    size = 0
    md5 = hashlib.md5()
    async for info in objects.list(account, container, prefix):
        size += info.size
        md5.update(info.etag.encode())

    async def read(first: int, last: int) -> AsyncIterator[bytes]:
        offset = 0
        async for info in objects.list(account, container, prefix):
            if offset > last:
                return
            if info.size and offset + info.size > first:
                lo, hi = max(first - offset, 0), min(last - offset, info.size - 1)
                async for piece in _read_segment(objects, info, lo, hi):
                    yield piece
            offset += info.size
        if offset <= last:
            raise BrokenLargeObject(f"segments under {container}/{prefix} shrank while they were read")

    return Body(size, md5.hexdigest(), read, "dlo")


def decode_data_segment(value: object) -> bytes | None:
    """The bytes of an inline "data" segment, or None if it is not valid base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
