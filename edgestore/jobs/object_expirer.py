"""Delete the objects whose X-Delete-At has passed (Swift's object expirer).

Reads already hide an expired object; this job deletes it for good, the way a client's
DELETE does (a delete marker in a versioned bucket), and so frees what the object held as
a DELETE does (blocks are reclaimed by the block garbage collector, a later issue).

The expiry index has EXPIRY_QUEUES queues, each one partition. The node holding the
first primary replica of a queue's partition works it as soon as entries are due; the
holders of the second and third replicas take only entries already overdue by one or two
intervals, so a queue whose first node is down is still worked, a little later. Doing an
entry twice is harmless: an object is deleted only if its current record still carries
the entry's delete_at, and deleting an index entry twice writes the same tombstone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from edgestore.errors import ClusterError
from edgestore.model.buckets import Buckets
from edgestore.model.expiry import EXPIRY_QUEUES, ExpiryEntry, ExpiryIndex
from edgestore.model.versions import Versions

__all__ = ["ObjectExpirer"]

log = logging.getLogger(__name__)

# Index entries are written just before their object's record, after its body has been
# stored, so an entry may appear after its delete_at has passed — by as long as an upload
# takes. Entries (and tombstones) older than this are assumed settled: later passes of
# this node start after them instead of reading every tombstone since the node started.
SETTLE_S = 24 * 3600


class ObjectExpirer:
    name = "object-expirer"

    def __init__(self, index: ExpiryIndex, buckets: Buckets, versions: Versions, interval_s: float) -> None:
        self._index = index
        self._buckets = buckets
        self._versions = versions
        self.interval_s = interval_s
        self._settled: dict[int, str] = {}  # queue -> name after which a pass starts

    async def run_once(self, all_queues: bool = False, **_: Any) -> dict[str, Any]:
        """One pass. `all_queues` (for operators and tests) works every queue from this
        node, without waiting for entries to be overdue."""
        now = time.time()
        counts = {"queues": 0, "due": 0, "expired": 0, "stale": 0, "errors": 0}
        for queue in range(EXPIRY_QUEUES):
            rank = 0 if all_queues else self._index.local_rank(queue)
            if rank is None:
                continue
            counts["queues"] += 1
            await self._work_queue(queue, now - rank * self.interval_s, now - SETTLE_S, counts)
        return counts

    async def _work_queue(self, queue: int, cutoff: float, settled_before: float, counts: dict[str, int]) -> None:
        settled = self._settled.get(queue)
        clean = True
        async for entry in self._index.due(queue, cutoff, settled):
            if not entry.deleted:
                counts["due"] += 1
                try:
                    counts["expired" if await self._expire(entry) else "stale"] += 1
                    await self._index.remove(entry)
                except ClusterError as exc:  # not enough replicas now: the next pass retries
                    log.warning("could not expire %s/%s/%s: %s", entry.account, entry.bucket, entry.key, exc)
                    counts["errors"] += 1
                    clean = False
            if clean and entry.delete_at < settled_before:
                settled = entry.record.name
        if settled is not None:
            self._settled[queue] = settled

    async def _expire(self, entry: ExpiryEntry) -> bool:
        """Delete the entry's object if it still expires at that time; was it deleted?"""
        if not await self._index.still_due(entry):
            return False
        bucket = await self._buckets.lookup(entry.bucket, use_cache=False)
        # A bucket deleted (its expired objects did not keep it from being) or since
        # taken by another account: the record is tombstoned as in an unversioned bucket.
        versioning = bucket.versioning if bucket is not None and bucket.account == entry.account else None
        await self._versions.delete(entry.account, entry.bucket, entry.key, versioning, None)
        return True
