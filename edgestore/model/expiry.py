"""Object expiry (Swift's X-Delete-At): when an object stops being served, and the index
through which the object expirer finds the objects that are due.

An object whose record carries `delete_at` (unix seconds) is gone for every read from that
second on, by the reading node's clock, whether or not the expirer has deleted it yet. The
index holds one `expiry` record per (delete_at, object), written *before* the object record
that carries that delete_at: a crash can leave an entry whose object never got (or no
longer has) that delete_at, which the expirer recognises and drops, but never an expiring
object that the expirer cannot find. Entries are spread over EXPIRY_QUEUES queues, each
one partition that any node can list, and named so that due entries sort first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

import xxhash

from edgestore.clock import Clock
from edgestore.cluster.coordinator import Coordinator
from edgestore.store.records import KIND_EXPIRY, KIND_OBJECT, Record, object_name, placement_path

__all__ = ["EXPIRY_QUEUES", "MAX_DELETE_AT", "ExpiryEntry", "ExpiryIndex", "delete_at_of", "is_expired"]

EXPIRY_QUEUES = 8
MAX_DELETE_AT = 9_999_999_999  # ten digits, as Swift normalises it: the names sort by time


def delete_at_of(value: dict[str, Any]) -> int | None:
    """The expiry time an object (or version) record carries, if any."""
    delete_at = value.get("delete_at")
    return int(delete_at) if delete_at is not None else None


def is_expired(value: dict[str, Any], now: float) -> bool:
    delete_at = delete_at_of(value)
    return delete_at is not None and delete_at <= now


@dataclass(frozen=True)
class ExpiryEntry:
    """One index entry: the object `account/bucket/key` expires at `delete_at`."""
    record: Record
    delete_at: int
    account: str
    bucket: str
    key: str

    @property
    def deleted(self) -> bool:
        return self.record.deleted

    @classmethod
    def from_record(cls, record: Record) -> ExpiryEntry:
        _, delete_at, account, bucket, key = record.name.split("/", 4)
        return cls(record, int(delete_at), account, bucket, key)


def _queue_prefix(queue: int) -> str:
    return f"{queue:02d}/"


class ExpiryIndex:
    def __init__(self, coordinator: Coordinator, clock: Clock, node_id: str) -> None:
        self._coordinator = coordinator
        self._clock = clock
        self._node_id = node_id

    @staticmethod
    def entry_name(delete_at: int, name: str) -> str:
        """The index name of object record `name` expiring at `delete_at`."""
        queue = xxhash.xxh32_intdigest(name.encode()) % EXPIRY_QUEUES
        return f"{_queue_prefix(queue)}{delete_at:010d}/{name}"

    async def add(self, name: str, value: dict[str, Any]) -> None:
        """Index object record `name` if its new value expires; call before writing it."""
        delete_at = delete_at_of(value)
        if delete_at is not None:
            await self._coordinator.put_record(
                Record(KIND_EXPIRY, self.entry_name(delete_at, name), self._clock.now(), self._node_id))

    async def due(self, queue: int, cutoff: float, after: str | None = None) -> AsyncIterator[ExpiryEntry]:
        """The entries of a queue (tombstones included) due at or before `cutoff`, oldest
        first, from name `after` (exclusive)."""
        prefix = _queue_prefix(queue)
        async for record in self._coordinator.iter_records(KIND_EXPIRY, placement_path(KIND_EXPIRY, prefix),
                                                           prefix, after):
            entry = ExpiryEntry.from_record(record)
            if entry.delete_at > cutoff:
                return
            yield entry

    async def still_due(self, entry: ExpiryEntry) -> bool:
        """Does the object's current record still carry this entry's delete_at? A later
        PUT or POST may have changed or removed it, or a DELETE removed the object."""
        current = await self._coordinator.get_record(KIND_OBJECT, object_name(entry.account, entry.bucket, entry.key))
        return current is not None and not current.deleted and delete_at_of(current.value) == entry.delete_at

    async def remove(self, entry: ExpiryEntry) -> None:
        await self._coordinator.put_record(Record(KIND_EXPIRY, entry.record.name, self._clock.now(), self._node_id,
                                                  deleted=True))

    def local_rank(self, queue: int) -> int | None:
        """Which replica of the queue's partition this node holds (0 = first primary), or
        None: the expirer uses it to share the queues out among the nodes."""
        return self._coordinator.local_rank(placement_path(KIND_EXPIRY, _queue_prefix(queue)))
