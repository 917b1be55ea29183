"""Object versions: reading a given version, deleting one for good, and listing them all.

Writing versions is `Objects.commit`'s job (a version record beside the current record).
The current record is always the newest version, or a tombstone naming the delete marker
that is newest, so reads and listings of a versioned bucket cost what they cost without
versioning. Deleting a version for good may make an older version current again: its
record is then copied back into the current record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncGenerator

from edgestore.clock import Clock
from edgestore.cluster.coordinator import Coordinator
from edgestore.model.objects import NULL_VERSION, ObjectInfo, Objects
from edgestore.store.records import (
    KIND_OBJECT,
    KIND_VERSION,
    VERSION_SEPARATOR,
    Record,
    object_name,
    placement_path,
    version_name,
)

__all__ = ["Versions", "ListedVersion"]


@dataclass(frozen=True)
class ListedVersion:
    info: ObjectInfo
    version_id: str
    is_latest: bool


def _info(key: str, record: Record) -> ObjectInfo:
    if record.deleted or record.value.get("delete_marker"):
        return ObjectInfo.marker(key, record)
    return ObjectInfo.from_record(key, record)


class Versions:
    def __init__(self, coordinator: Coordinator, objects: Objects, clock: Clock, node_id: str) -> None:
        self._coordinator = coordinator
        self._objects = objects
        self._clock = clock
        self._node_id = node_id

    async def _find(self, name: str, version_id: str) -> Record | None:
        """The record holding a version: a version record, or for "null" possibly the
        current record of an object written before versioning was turned on."""
        if version_id == NULL_VERSION:
            current = await self._coordinator.get_record(KIND_OBJECT, name)
            if current is not None and not current.deleted and "version_id" not in current.value:
                return current
            async for record in self._objects.versions_of(name):
                if record.value.get("version_id") == NULL_VERSION:
                    return await self._coordinator.get_record(KIND_VERSION, record.name)
            return None
        if not version_id.isalnum() or len(version_id) > 64:
            return None
        found = await self._coordinator.get_record(KIND_VERSION, version_name(name, version_id))
        return None if found is None or found.deleted else found

    async def get(self, account: str, bucket: str, key: str, version_id: str) -> ObjectInfo | None:
        record = await self._find(object_name(account, bucket, key), version_id)
        return None if record is None else _info(key, record)

    async def delete(self, account: str, bucket: str, key: str, versioning: str | None,
                     version_id: str | None) -> tuple[str | None, bool]:
        """Delete the current object (a delete marker if versioned) or, with a version id,
        that version for good. Returns (version id, whether it is/was a delete marker)."""
        if version_id is None:
            if versioning is None:
                await self._objects.commit(account, bucket, key, {}, None, None, deleted=True)
                return None, False
            marker = await self._objects.commit(account, bucket, key, {}, None, versioning, deleted=True)
            return marker.version_id, True
        name = object_name(account, bucket, key)
        target = await self._find(name, version_id)
        if target is None:
            return version_id, False
        ts = self._clock.now()
        records = []
        if target.kind == KIND_VERSION:
            records.append(Record(KIND_VERSION, target.name, ts, self._node_id, deleted=True))
        current = await self._coordinator.get_record(KIND_OBJECT, name)
        was_current = target.kind == KIND_OBJECT or (
            current is not None and current.value.get("version_id") == target.value.get("version_id"))
        if was_current:
            newest = None
            async for record in self._objects.versions_of(name):
                if record.name != target.name:
                    newest = await self._coordinator.get_record(KIND_VERSION, record.name)
                    break
            if newest is None or newest.deleted:
                records.append(Record(KIND_OBJECT, name, ts, self._node_id, deleted=True))
            else:
                is_marker = bool(newest.value.get("delete_marker"))
                records.append(Record(KIND_OBJECT, name, ts, self._node_id, is_marker, dict(newest.value),
                                      None if is_marker else newest.data))
        await self._coordinator.put_records(placement_path(KIND_OBJECT, name), records)
        return version_id, bool(target.value.get("delete_marker"))

    async def listing(self, account: str, bucket: str, prefix: str = "") -> AsyncGenerator[ListedVersion, None]:
        """Every version of every key under prefix: keys in order, each key's newest first."""
        base = f"{account}/{bucket}/"
        path = placement_path(KIND_OBJECT, base)
        currents = self._coordinator.iter_records(KIND_OBJECT, path, base + prefix)
        versions = self._coordinator.iter_records(KIND_VERSION, path, base + prefix)
        current = await anext(currents, None)
        version = await anext(versions, None)
        while current is not None or version is not None:
            key_of_version = version.name.split(VERSION_SEPARATOR, 1)[0] if version is not None else None
            if current is not None and (key_of_version is None or current.name.encode() <= key_of_version.encode()):
                name = current.name
            else:
                assert key_of_version is not None
                name = key_of_version
            key = name[len(base):]
            latest_id = None
            if current is not None and current.name == name:
                latest_id = current.value.get("version_id")
                if latest_id is None and not current.deleted:  # written before versioning
                    yield ListedVersion(ObjectInfo.from_record(key, current), NULL_VERSION, True)
                current = await anext(currents, None)
            while version is not None and version.name.split(VERSION_SEPARATOR, 1)[0] == name:
                if not version.deleted:
                    shown = str(version.value.get("version_id"))
                    yield ListedVersion(_info(key, version), shown, shown == latest_id)
                version = await anext(versions, None)
