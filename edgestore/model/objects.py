"""Objects: writing a body as an inline record or as blocks, reading it back by range.

A body is streamed: at most `blocks_in_flight_per_request` blocks of one request (and
`blocks_in_flight_total` over the node) are in memory at once. A small body (up to
`inline_max_bytes`) is stored inside its record: one SQLite row per replica instead of
a file, which is what SD cards handle best. A larger one is cut into blocks, each with a
fresh id that carries its checksum (store/blockid.py); each block goes to a quorum of its
own replicas before the object record, which lists the blocks, is written — so an
acknowledged record never names a missing block.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, AsyncGenerator, AsyncIterator, Awaitable, Callable

from edgestore.clock import Clock, ts_to_seconds
from edgestore.cluster.coordinator import Coordinator
from edgestore.config import NodeConfig
from edgestore.errors import BodyTooSlow, DigestMismatch, NoSuchObject
from edgestore.model.acl import DEFAULT_ACL
from edgestore.model.expiry import ExpiryIndex, delete_at_of, is_expired
from edgestore.model.listing import (
    CountersProbe,
    ListedObject,
    ListedPrefix,
    bucket_usage,
    list_bucket_names,
    list_bucket_pages,
    usage_probe,
)
from edgestore.store.blockid import BlockBytes, is_pieced, new_block_id
from edgestore.store.records import (
    KIND_DATAUSE,
    KIND_OBJECT,
    KIND_VERSION,
    VERSION_SEPARATOR,
    WRITTEN_TS,
    Record,
    new_version_id,
    object_name,
    placement_path,
    version_name,
)

NULL_VERSION = "null"
# A read fetches a pieced block this much at a time (a whole number of pieces), whatever
# the block size: the memory a reader holds, and one request to a peer.
READ_BATCH_BYTES = 1024 * 1024
# A block being filled is gathered as the pieces that come in up to this size, then copied
# into a buffer of the block's full size and filled in place: gathered and joined, a 4 MiB
# block cost twice its size in a node's heap, and a buffer made up front would cost a
# mid-sized object (16 KiB to a few hundred) a 4 MiB allocation.
GATHER_MAX_BYTES = 1024 * 1024

__all__ = ["Objects", "ObjectInfo", "StoredBody"]


@dataclass(frozen=True)
class ObjectInfo:
    """An object's metadata as the APIs see it."""
    key: str
    size: int
    etag: str
    last_modified: float
    content_type: str
    meta: dict[str, str]
    headers: dict[str, str]
    checksums: dict[str, str]
    acl: str
    tags: dict[str, str]
    record: Record

    @property
    def version_id(self) -> str | None:
        """The S3 version id: None in a bucket that was never versioned."""
        value = self.record.value.get("version_id")
        return str(value) if value is not None else None

    @property
    def delete_at(self) -> int | None:
        """When the object expires (unix seconds; Swift's X-Delete-At), if it does."""
        return delete_at_of(self.record.value)

    @property
    def delete_marker(self) -> bool:
        return bool(self.record.value.get("delete_marker"))

    @classmethod
    def marker(cls, key: str, record: Record) -> ObjectInfo:
        """A delete marker, as listings of versions show it."""
        return cls(key=key, size=0, etag="", last_modified=ts_to_seconds(record.ts), content_type="",
                   meta={}, headers={}, checksums={}, acl=DEFAULT_ACL, tags={}, record=record)

    @classmethod
    def from_record(cls, key: str, record: Record) -> ObjectInfo:
        v = record.value
        return cls(key=key, size=int(v["size"]), etag=str(v["etag"]),
                   # A metadata-only rewrite (an ACL change) keeps the data's time.
                   last_modified=ts_to_seconds(int(v.get("mtime_ts", record.ts))),
                   content_type=str(v.get("content_type") or "binary/octet-stream"),
                   meta=dict(v.get("meta", {})), headers=dict(v.get("headers", {})),
                   checksums=dict(v.get("checksums", {})), acl=str(v.get("acl", DEFAULT_ACL)),
                   tags=dict(v.get("tags", {})), record=record)


@dataclass(frozen=True)
class StoredBody:
    """A body now durable in the cluster: inline bytes, or the blocks that hold it."""
    size: int
    md5: bytes
    data_id: str
    blocks: list[list[Any]] | None
    inline: bytes | None

    def value(self) -> dict[str, Any]:
        """The part of an object (or part) record that describes its data."""
        value: dict[str, Any] = {"size": self.size, "etag": self.md5.hex(), "data_id": self.data_id}
        if self.blocks is not None:
            value["blocks"] = self.blocks
        return value


class Objects:
    def __init__(self, coordinator: Coordinator, clock: Clock, config: NodeConfig) -> None:
        self._coordinator = coordinator
        self._clock = clock
        self._node_id = config.node_id
        self._inline_max = config.inline_max_bytes
        self._block_size = config.block_size_bytes
        self._per_request = config.blocks_in_flight_per_request
        self._node_blocks = asyncio.Semaphore(config.blocks_in_flight_total)
        # Garbage collection looks at every stored block once after its grace period and
        # takes it if no record names it: a body must be in well before then.
        self._max_body_s = config.repair.gc_grace_s / 2
        self.expiry = ExpiryIndex(coordinator, clock, config.node_id)

    async def head(self, account: str, bucket: str, key: str) -> ObjectInfo | None:
        record = await self._coordinator.get_record(KIND_OBJECT, object_name(account, bucket, key))
        if record is None or record.deleted or is_expired(record.value, time.time()):
            return None
        return ObjectInfo.from_record(key, record)

    async def put(self, account: str, bucket: str, key: str, body: AsyncIterator[bytes],
                  attrs: dict[str, Any], late_attrs: Callable[[], dict[str, Any]] | None = None,
                  before_commit: Callable[[], Awaitable[None]] | None = None,
                  versioning: str | None = None, expected_md5: bytes | None = None) -> ObjectInfo:
        """Store a body. `body` raising (a bad digest, a short body) aborts the write
        before anything is acknowledged; `late_attrs` adds values known only at the end
        (checksums sent as trailers); `before_commit` may still refuse (a precondition)."""
        name = object_name(account, bucket, key)
        stored = await self.store_body(name, body, allow_inline=True, expected_md5=expected_md5)
        value: dict[str, Any] = dict(attrs)
        value.update(stored.value(), owner=account)
        if late_attrs is not None:
            value.update(late_attrs())
        if before_commit is not None:
            await before_commit()
        return await self.commit(account, bucket, key, value, stored.inline, versioning)

    async def commit(self, account: str, bucket: str, key: str, value: dict[str, Any], data: bytes | None,
                     versioning: str | None, deleted: bool = False) -> ObjectInfo:
        """Make a new version the current one. In a bucket whose versioning is Enabled or
        Suspended, a version record keeps it after it is overwritten; the version record
        and the current record share a partition and go in one write. `deleted` makes a
        delete marker (the current record becomes a tombstone that names it)."""
        name = object_name(account, bucket, key)
        records = []
        if versioning in ("Enabled", "Suspended"):
            # Read the current version before stamping this one: the read moves a lagging
            # clock past it, so the new version id (made from the timestamp) sorts above it.
            records += await self._keep_unversioned(name)
        ts = self._clock.now()
        if versioning in ("Enabled", "Suspended"):
            version_id = new_version_id(ts, self._node_id)
            shown = version_id if versioning == "Enabled" else NULL_VERSION
            value = dict(value, version_id=shown)
            if deleted:
                value["delete_marker"] = True
            if versioning == "Suspended":  # a null version replaces the previous null version
                records += [Record(KIND_VERSION, old.name, ts, self._node_id, deleted=True)
                            async for old in self.versions_of(name) if old.value.get("version_id") == NULL_VERSION]
            records.append(Record(KIND_VERSION, version_name(name, version_id), ts, self._node_id,
                                  value=value, data=data))
        current = Record(KIND_OBJECT, name, ts, self._node_id, deleted, value, None if deleted else data)
        if not deleted:
            await self.expiry.add(name, value)
        await self._coordinator.put_records(placement_path(KIND_OBJECT, name), records + [current])
        return ObjectInfo.from_record(key, current.without_data()) if not deleted else \
            ObjectInfo.marker(key, current)

    async def delete_unversioned(self, account: str, bucket: str, key: str) -> bool | None:
        """Delete the object of a bucket that never had versioning (a tombstone, as commit
        writes), without reading it first. Returns whether a live object was there, as a
        quorum read would have said, from the replicas' write answers; None if they could
        not say (peers older than that answer)."""
        name = object_name(account, bucket, key)
        tombstone = Record(KIND_OBJECT, name, self._clock.now(), self._node_id, deleted=True)
        replaced = await self._coordinator.replace_records(placement_path(KIND_OBJECT, name), [tombstone])
        return replaced[name]

    async def expire_unversioned(self, account: str, bucket: str, info: ObjectInfo) -> None:
        """Delete ``info`` — that write of the object, not whatever is current by then — in a
        bucket that never had versioning: its tombstone is stamped just after it, so a write
        made since (stamped later) stays. For deletions nobody asked for at that moment
        (lifecycle rules), where a plain delete could take a PUT that came in meanwhile."""
        name = object_name(account, bucket, info.key)
        # (written_ts: kept the full reclaim age from now, not from its stamp — a replica
        # that missed it must get it from anti-entropy before it may be forgotten.)
        tombstone = Record(KIND_OBJECT, name, info.record.ts + 1, self._node_id, deleted=True,
                           value={WRITTEN_TS: self._clock.now()})
        await self._coordinator.put_records(placement_path(KIND_OBJECT, name), [tombstone], restamp=False)

    async def _keep_unversioned(self, name: str) -> list[Record]:
        """An object written before versioning was turned on becomes the "null" version
        when the first version is written over it, instead of being lost."""
        current = await self._coordinator.get_record(KIND_OBJECT, name)
        if current is None or current.deleted or "version_id" in current.value:
            return []
        value = dict(current.value, version_id=NULL_VERSION, mtime_ts=int(current.value.get("mtime_ts", current.ts)))
        return [Record(KIND_VERSION, version_name(name, new_version_id(current.ts, current.node)), current.ts,
                       current.node, value=value, data=current.data)]

    async def versions_of(self, name: str) -> AsyncIterator[Record]:
        """The live version records of one object (by its record name), newest first."""
        prefix = name + VERSION_SEPARATOR
        async for record in self._coordinator.iter_records(KIND_VERSION, placement_path(KIND_VERSION, name),
                                                           prefix):
            if not record.deleted:
                yield record

    async def copy(self, source: ObjectInfo, account: str, bucket: str, key: str,
                   attrs: dict[str, Any] | None, acl: str,
                   before_commit: Callable[[], Awaitable[None]] | None = None,
                   versioning: str | None = None, tags: dict[str, str] | None = None) -> ObjectInfo:
        """A new object with the source's data: the same blocks (nothing is copied) or the
        same inline bytes. `attrs` replaces the source's metadata when given; the ACL is
        the copy's own, never the source's."""
        value = dict(source.record.value)
        value.pop("delete_at", None)  # a copy expires only if asked to (attrs)
        if attrs is not None:
            for name in ("content_type", "meta", "headers"):
                value.pop(name, None)
            value.update(attrs)
        value["owner"] = account
        value["acl"] = acl
        if tags is not None:
            value["tags"] = tags
        for stale in ("mtime_ts", "version_id", "delete_marker"):
            value.pop(stale, None)
        data = source.record.data
        if "blocks" not in value and data is None:
            full = await self._coordinator.get_record(source.record.kind, source.record.name)
            if full is None or full.version != source.record.version or full.data is None:
                raise NoSuchObject(bucket, source.key)
            data = full.data
        if "blocks" in value:
            await self._share_blocks(source, object_name(account, bucket, key))
        if before_commit is not None:
            await before_commit()
        return await self.commit(account, bucket, key, value, data, versioning)

    async def _share_blocks(self, source: ObjectInfo, user: str) -> None:
        """Record that `user` will use the source's blocks, then make sure the source still
        holds them. Garbage collection checks a block's users in the opposite order (the
        source, then this index), so whichever way the two race, a block in use is never
        taken: either the copy sees the source gone and fails, or collection sees the copy."""
        data_id = str(source.record.value.get("data_id", ""))
        await self._coordinator.put_record(Record(KIND_DATAUSE, f"{data_id}/{user}", self._clock.now(),
                                                  self._node_id, value={"from": source.record.name}))
        current = await self._coordinator.get_record(source.record.kind, source.record.name)
        if current is None or current.deleted or current.value.get("data_id") != data_id:
            raise NoSuchObject(source.record.name.split("/", 2)[1], source.key)

    async def update(self, bucket: str, info: ObjectInfo, **changes: Any) -> None:
        """Rewrite an object version's records with some of its attributes changed (its ACL,
        its tags, Swift's metadata); its data, ETag and Last-Modified stay. ``info`` is the
        current object or a version of it (versions.get): both records of that version —
        the current one and its version record — change together. Each is stamped just
        after the record it rewrites and never restamped, so a write made meanwhile (a PUT
        over the object) is not undone: the change then applies to the version it named."""
        full = await self._coordinator.get_record(info.record.kind, info.record.name)
        if full is None or full.deleted or full.version != info.record.version:
            raise NoSuchObject(bucket, info.key)
        records = [full]
        twin = await self._twin(full)
        if twin is not None:
            records.append(twin)
        changed = [Record(r.kind, r.name, r.ts + 1, self._node_id,
                          value=dict(r.value, mtime_ts=int(r.value.get("mtime_ts", r.ts)), **changes), data=r.data)
                   for r in records]
        for record in changed:
            if record.kind == KIND_OBJECT:
                await self.expiry.add(record.name, record.value)
        name = full.name.split(VERSION_SEPARATOR, 1)[0]
        await self._coordinator.put_records(placement_path(KIND_OBJECT, name), changed, restamp=False)

    async def _twin(self, record: Record) -> Record | None:
        """The other record of the same object version: the version record of a current
        record, or the current record of a version record that is current; None if none."""
        version_id = record.value.get("version_id")
        if version_id is None:
            return None
        name = record.name.split(VERSION_SEPARATOR, 1)[0]
        if record.kind == KIND_VERSION:
            twin = await self._coordinator.get_record(KIND_OBJECT, name)
        elif version_id != NULL_VERSION:
            twin = await self._coordinator.get_record(KIND_VERSION, version_name(name, version_id))
        else:  # a "null" version's record is named by when it was written: look it up
            twin = None
            async for listed in self.versions_of(name):
                if listed.value.get("version_id") == NULL_VERSION:
                    twin = await self._coordinator.get_record(KIND_VERSION, listed.name)
                    break
        if twin is None or twin.deleted or twin.value.get("version_id") != version_id:
            return None
        return twin

    async def delete_many(self, account: str, bucket: str, keys: list[str]) -> None:
        """Tombstone many keys of one bucket in one replicated write (they share a partition)."""
        ts = self._clock.now()
        records = [Record(KIND_OBJECT, object_name(account, bucket, key), ts, self._node_id, deleted=True)
                   for key in keys]
        if records:
            await self._coordinator.put_records(placement_path(KIND_OBJECT, records[0].name), records)

    async def store_body(self, name: str, body: AsyncIterator[bytes], allow_inline: bool,
                         expected_md5: bytes | None = None) -> StoredBody:
        """Stream a body into blocks (or keep it for inline storage if small and allowed);
        returns once every block is on a quorum of its replicas. The MD5 computed for the
        ETag also checks a declared one (Content-MD5, Swift's ETag): DigestMismatch."""
        data_id = secrets.token_hex(8)
        ref = f"{name}#{data_id}"
        md5 = hashlib.md5()
        size = 0
        pieces: list[bytes] = []  # the block being filled, as the pieces that came in...
        block: bytearray | None = None  # ...or in place, once it holds GATHER_MAX_BYTES
        filled = 0
        # A body past inline_max is cut into blocks; the first is never cut before it.
        cut = max(self._block_size, self._inline_max + 1)
        uploads = _BlockUploads(self._coordinator, self._node_blocks, self._per_request, ref, self._clock)
        started = time.monotonic()
        try:
            async for chunk in body:
                size += len(chunk)
                view = memoryview(chunk)
                while view:
                    if filled + len(view) > self._inline_max:
                        # No longer inline: the block being filled counts against the
                        # memory bounds before it grows, not only once it is sent.
                        await uploads.reserve()
                    take = min(cut - filled, len(view))
                    if block is None and filled + take > GATHER_MAX_BYTES:
                        block = bytearray(cut)
                        block[:filled] = b"".join(pieces)
                        pieces = []
                    if block is not None:
                        block[filled:filled + take] = view[:take]
                    else:
                        pieces.append(chunk if take == len(chunk) else bytes(view[:take]))
                    filled += take
                    view = view[take:]
                    if filled == cut:
                        await uploads.add(md5, block if block is not None else b"".join(pieces))
                        block, pieces, filled = None, [], 0
            if block is not None:
                del block[filled:]   # the last, shorter block
            data: BlockBytes = block if block is not None else b"".join(pieces)
            inline = allow_inline and not uploads.started and filled <= self._inline_max
            if inline:
                md5.update(data)
            elif data:
                await uploads.add(md5, data)
            blocks = await uploads.finish()
        finally:
            await uploads.cancel()
        if expected_md5 is not None and md5.digest() != expected_md5:
            raise DigestMismatch(expected_md5, md5.digest())
        if not inline and time.monotonic() - started > self._max_body_s:
            raise BodyTooSlow(time.monotonic() - started)
        return StoredBody(size, md5.digest(), data_id, None if inline else blocks, bytes(data) if inline else None)

    async def read(self, info: ObjectInfo, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes start..end (inclusive) of an object, a stretch of at most
        READ_BATCH_BYTES at a time (the whole block of an older-form block), the next one
        fetched while this one is sent: two stretches of memory per reader."""
        end = info.size - 1 if end is None else end
        if end < start:
            return
        record = info.record
        if "blocks" not in record.value:
            data = record.data
            if data is None:  # the listing/HEAD form of the record: fetch it whole
                full = await self._coordinator.get_record(record.kind, record.name)
                data = full.data if full is not None and full.version == record.version else None
                if data is None:
                    raise NoSuchObject(record.name.split("/", 2)[1], info.key)
            yield data[start:end + 1]
            return
        stretches = _stretches(record.value["blocks"], start, end)
        fetches: list[asyncio.Task[bytes]] = []
        try:
            for i in range(len(stretches)):
                while len(fetches) < 2 and i + len(fetches) < len(stretches):
                    fetches.append(asyncio.ensure_future(
                        self._coordinator.read_block(*stretches[i + len(fetches)])))
                piece = await fetches.pop(0)
                yield piece
                del piece  # sent: let it go before the next fetch is started
        finally:
            for task in fetches:
                task.cancel()
            await asyncio.gather(*fetches, return_exceptions=True)

    def listing_pages(self, account: str, bucket: str, prefix: str = "", after: str | None = None,
                      delimiter: str = "", page_size: int = 1000, with_meta: bool = False,
                      counters: CountersProbe | None = None
                      ) -> AsyncGenerator[list[ListedObject | ListedPrefix], None]:
        """What a listing shows (model/listing.py), a page at a time: lean entries, common
        prefixes rolled up; `counters` (usage_probe's) reads the bucket's with the first page."""
        return list_bucket_pages(self._coordinator, account, bucket, prefix, after, delimiter, page_size, with_meta,
                                 counters)

    def listing_names(self, account: str, bucket: str, prefix: str = "", after: str | None = None,
                      delimiter: str = "", page_size: int = 1000,
                      counters: CountersProbe | None = None) -> AsyncGenerator[list[str], None]:
        """listing_pages of a listing that shows names only: keys and common prefixes."""
        return list_bucket_names(self._coordinator, account, bucket, prefix, after, delimiter, page_size, counters)

    @staticmethod
    def usage_probe(account: str, bucket: str) -> CountersProbe:
        """A listing given this reads the bucket's counters with its first page (for usage)."""
        return usage_probe(account, bucket)

    async def usage(self, account: str, bucket: str, probe: CountersProbe | None = None) -> tuple[int, int]:
        """(objects, bytes) of a bucket, from counters (eventually consistent): those a
        listing's probe found, else read now."""
        return await bucket_usage(self._coordinator, account, bucket, probe)

    async def list(self, account: str, bucket: str, prefix: str = "",
                   after: str | None = None) -> AsyncIterator[ObjectInfo]:
        """Live objects of a bucket in key order, from `after` (exclusive)."""
        base = f"{account}/{bucket}/"
        path = placement_path(KIND_OBJECT, base)
        async for record in self._coordinator.iter_records(
                KIND_OBJECT, path, base + prefix, base + after if after is not None else None):
            if not record.deleted and not is_expired(record.value, time.time()):
                yield ObjectInfo.from_record(record.name[len(base):], record)


class _BlockUploads:
    """The blocks of one body, uploaded concurrently but within the memory bounds: a
    block holds a place in both bounds from when it starts filling until its replicas are
    done with it, the late ones too (the body is acknowledged once a quorum has each block)."""

    def __init__(self, coordinator: Coordinator, node_blocks: asyncio.Semaphore, per_request: int,
                 ref: str, clock: Clock) -> None:
        self._coordinator = coordinator
        self._node_blocks = node_blocks
        self._mine = asyncio.Semaphore(per_request)
        self._ref = ref
        self._clock = clock
        self._tasks: list[asyncio.Task[list[Any]]] = []
        self._reserved = False
        self._last_hashed: asyncio.Event | None = None

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    async def reserve(self) -> None:
        """Hold a place for the next block (a no-op while one is held)."""
        if self._reserved:
            return
        for task in self._tasks:  # fail fast: do not read more of a body we cannot store
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        await self._mine.acquire()
        try:
            await self._node_blocks.acquire()
        except BaseException:
            self._mine.release()
            raise
        self._reserved = True

    async def add(self, md5: Any, data: BlockBytes) -> None:
        """Send the next block of the body; it goes into the body's MD5 after the one before."""
        await self.reserve()
        self._reserved = False  # the upload task owns the place now, and frees it
        hashed = asyncio.Event()
        self._tasks.append(asyncio.ensure_future(self._upload(md5, data, self._last_hashed, hashed)))
        self._last_hashed = hashed

    def _release(self) -> None:
        self._node_blocks.release()
        self._mine.release()

    async def _upload(self, md5: Any, data: BlockBytes, after: asyncio.Event | None,
                      hashed: asyncio.Event) -> list[Any]:
        rest: asyncio.Task[None] | None = None
        try:
            try:
                if after is not None:
                    await after.wait()
                # The MD5 (and the block's checksum) in one thread hop, off the event
                # loop, which stays free to move the bytes of every request in flight.
                block = await asyncio.to_thread(_hash_block_sync, md5, data)
            finally:
                hashed.set()
            rest = await self._coordinator.put_block(block, data, self._ref, self._clock.now())
            return [block, len(data)]
        finally:
            # A replica still writing holds `data`: its place is freed when it is done.
            if rest is None:
                self._release()
            else:
                rest.add_done_callback(lambda _: self._release())

    async def finish(self) -> list[list[Any]]:
        return list(await asyncio.gather(*self._tasks))

    async def cancel(self) -> None:
        if self._reserved:
            self._reserved = False
            self._release()
        pending = [t for t in self._tasks if not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _stretches(blocks: list[list[Any]], start: int, end: int) -> list[tuple[str, int, int, int]]:
    """The reads that make up bytes start..end of a body: (block, its size, first, last)
    within each block it touches, a pieced block's part cut at READ_BATCH_BYTES bounds."""
    stretches = []
    offset = 0
    for block, size in blocks:
        if offset + size > start and offset <= end:
            first, last = max(start - offset, 0), min(end - offset, size - 1)
            if not is_pieced(block):
                stretches.append((block, size, first, last))
            else:
                while first <= last:
                    cut = min(last, (first // READ_BATCH_BYTES + 1) * READ_BATCH_BYTES - 1)
                    stretches.append((block, size, first, cut))
                    first = cut + 1
        offset += size
    return stretches


def _hash_block_sync(md5: Any, data: BlockBytes) -> str:
    """Add a block to its body's MD5 (the ETag) and return its new id."""
    md5.update(data)
    return new_block_id(data)
