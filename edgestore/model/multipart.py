"""Multipart uploads: parts stored as blocks, completed by writing one record.

An upload is a record in the bucket's partition; each part is a record listing the blocks
that hold it. Completing an upload writes an object record whose block list is the parts'
lists joined in order: no data moves. The part records are then tombstoned with the name
of the object version that took their blocks over (what garbage collection will need to
tell taken-over blocks from abandoned ones).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from edgestore.clock import Clock, ts_to_seconds
from edgestore.cluster.coordinator import Coordinator
from edgestore.errors import BadPartList, NoSuchUpload
from edgestore.model.objects import ObjectInfo, Objects
from edgestore.store.records import KIND_PART, KIND_UPLOAD, Record, object_name, placement_path

__all__ = ["Upload", "Part", "Uploads", "MIN_PART_BYTES", "MAX_PARTS"]

MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10000


@dataclass(frozen=True)
class Upload:
    account: str
    bucket: str
    key: str
    upload_id: str
    initiated: float
    attrs: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.account}/{self.bucket}/{self.upload_id}"

    def part_name(self, number: int) -> str:
        return f"{self.name}/{number:05d}"


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str
    last_modified: float
    checksums: dict[str, str]
    blocks: list[list[Any]]


def _part_from_record(record: Record) -> Part:
    v = record.value
    return Part(int(record.name.rsplit("/", 1)[1]), int(v["size"]), str(v["etag"]),
                ts_to_seconds(record.ts), dict(v.get("checksums", {})), list(v.get("blocks", [])))


class Uploads:
    def __init__(self, coordinator: Coordinator, objects: Objects, clock: Clock, node_id: str) -> None:
        self._coordinator = coordinator
        self._objects = objects
        self._clock = clock
        self._node_id = node_id

    def _record(self, kind: str, name: str, value: dict[str, Any] | None = None, deleted: bool = False) -> Record:
        return Record(kind, name, self._clock.now(), self._node_id, deleted, value or {})

    async def create(self, account: str, bucket: str, key: str, attrs: dict[str, Any]) -> Upload:
        ts = self._clock.now()
        upload = Upload(account, bucket, key, f"{ts:016x}{secrets.token_hex(8)}", ts_to_seconds(ts), attrs)
        await self._coordinator.put_record(
            self._record(KIND_UPLOAD, upload.name, {"key": key, "initiated_ts": ts, "attrs": attrs}))
        return upload

    async def find(self, account: str, bucket: str, upload_id: str) -> Upload | None:
        """The upload as a quorum knows it, or None if absent, completed or aborted."""
        if not upload_id.isalnum():
            return None
        record = await self._coordinator.get_record(KIND_UPLOAD, f"{account}/{bucket}/{upload_id}")
        if record is None or record.deleted:
            return None
        return Upload(account, bucket, str(record.value["key"]), upload_id,
                      ts_to_seconds(int(record.value["initiated_ts"])), dict(record.value.get("attrs", {})))

    async def get(self, account: str, bucket: str, key: str, upload_id: str) -> Upload:
        upload = await self.find(account, bucket, upload_id)
        if upload is None or upload.key != key:
            raise NoSuchUpload(upload_id)
        return upload

    async def put_part(self, upload: Upload, number: int, body: AsyncIterator[bytes],
                       late_attrs: Callable[[], dict[str, Any]] | None = None,
                       expected_md5: bytes | None = None) -> Part:
        stored = await self._objects.store_body(upload.part_name(number), body, allow_inline=False,
                                                expected_md5=expected_md5)
        value = stored.value()
        if late_attrs is not None:
            value.update(late_attrs())
        record = self._record(KIND_PART, upload.part_name(number), value)
        await self._coordinator.put_record(record)
        return _part_from_record(record)

    async def parts(self, upload: Upload) -> list[Part]:
        prefix = upload.name + "/"
        return [_part_from_record(r) async for r in self._coordinator.iter_records(
            KIND_PART, placement_path(KIND_PART, prefix), prefix) if not r.deleted]

    async def in_bucket(self, account: str, bucket: str) -> list[Upload]:
        prefix = f"{account}/{bucket}/"
        uploads = [
            Upload(account, bucket, str(r.value["key"]), r.name[len(prefix):],
                   ts_to_seconds(int(r.value["initiated_ts"])), dict(r.value.get("attrs", {})))
            async for r in self._coordinator.iter_records(
                KIND_UPLOAD, placement_path(KIND_UPLOAD, prefix), prefix) if not r.deleted]
        return sorted(uploads, key=lambda u: (u.key, u.initiated, u.upload_id))

    async def complete(self, upload: Upload, wanted: list[tuple[int, str]],
                       checksum_of: Callable[[list[Part]], dict[str, str]] | None = None,
                       before_commit: Callable[[], Awaitable[None]] | None = None,
                       versioning: str | None = None) -> ObjectInfo:
        """Join the named parts (number, ETag) into the object; raises BadPartList."""
        have = {part.number: part for part in await self.parts(upload)}
        chosen: list[Part] = []
        previous = 0
        for number, etag in wanted:
            if number <= previous:
                raise BadPartList("order", number, "The list of parts was not in ascending order.")
            previous = number
            part = have.get(number)
            if part is None or part.etag != etag.strip('"'):
                raise BadPartList("missing", number, f"Part {number} could not be found or its ETag differs.")
            chosen.append(part)
        if not chosen:
            raise BadPartList("missing", 0, "You must specify at least one part.")
        for part in chosen[:-1]:
            if part.size < MIN_PART_BYTES:
                raise BadPartList("too_small", part.number,
                                  "Your proposed upload is smaller than the minimum allowed object size.")
        md5s = b"".join(bytes.fromhex(part.etag) for part in chosen)
        name = object_name(upload.account, upload.bucket, upload.key)
        data_id = upload.upload_id
        value: dict[str, Any] = dict(upload.attrs)
        value.update(
            size=sum(p.size for p in chosen), etag=f"{hashlib.md5(md5s).hexdigest()}-{len(chosen)}",
            data_id=data_id, owner=upload.account,
            blocks=[block for part in chosen for block in part.blocks],
            parts=[p.size for p in chosen],
        )
        if checksum_of is not None:
            value["checksums"] = checksum_of(chosen)
        if before_commit is not None:
            await before_commit()
        info = await self._objects.commit(upload.account, upload.bucket, upload.key, value, None, versioning)
        await self._close(upload, have.values(), {"completed_into": f"{name}#{data_id}"})
        return info

    async def abort(self, upload: Upload) -> None:
        await self._close(upload, await self.parts(upload), {"aborted": True})

    async def _close(self, upload: Upload, parts: Any, why: dict[str, Any]) -> None:
        """Tombstone the upload and its parts (in one write: they share a partition)."""
        records = [self._record(KIND_UPLOAD, upload.name, why, deleted=True)]
        records += [self._record(KIND_PART, upload.part_name(p.number), why, deleted=True) for p in parts]
        await self._coordinator.put_records(placement_path(KIND_UPLOAD, upload.name), records)
