"""Bringing one replica of a partition up to date from a local device: compare the two
indexes, then send only what the other side lacks — records newer than its version,
block files it does not hold, and block references it has not seen.

Sync is push-only, as Swift's replicators are: each holder pushes what it has, so two
replicas converge once each has pushed to the other. Blocks go before the references
that name them, so a reference normally arrives to find its file already there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from edgestore.errors import CorruptBlock, NoSuchBlock
from edgestore.repair.limiter import ByteRateLimiter
from edgestore.repair.replicas import Replica
from edgestore.store.device import LocalDevice
from edgestore.store.meta import BlockRef, PartitionIndex

__all__ = ["PushResult", "push_partition"]

log = logging.getLogger(__name__)

RECORD_BATCH = 200        # records per request (inline data is at most a few KiB each)
REF_BATCH = 2000


@dataclass
class PushResult:
    records: int = 0
    blocks: int = 0
    refs: int = 0
    bytes: int = 0
    # What the target now holds at least as new as this device's index showed: the
    # versions a handoff may forget once every primary confirmed them.
    confirmed_records: list[tuple[str, str, int, str]] = field(default_factory=list)
    confirmed_refs: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: PushResult) -> None:
        self.records += other.records
        self.blocks += other.blocks
        self.refs += other.refs
        self.bytes += other.bytes


async def push_partition(source: LocalDevice, part: int, target: Replica, limiter: ByteRateLimiter,
                         index: PartitionIndex | None = None) -> PushResult:
    """Send `target` what `source` holds of `part` and it lacks. Raises on a failed
    request (the caller retries next pass); what was sent before stays sent."""
    mine = index if index is not None else await source.meta.partition_index(part)
    theirs, their_blocks = await target.partition_state(part)
    result = PushResult()

    their_versions = {(kind, name): (ts, node) for kind, name, ts, node, _ in theirs.records}
    newer = [(kind, name) for kind, name, ts, node, _ in mine.records
             if (ts, node) > their_versions.get((kind, name), (-1, ""))]
    for start in range(0, len(newer), RECORD_BATCH):
        records = list(await source.meta.records_by_key(newer[start:start + RECORD_BATCH]))
        if not records:
            continue
        size = sum(len(r.data or b"") + 256 for r in records)
        await limiter.take(size)
        await target.put_records(part, records)
        result.records += len(records)
        result.bytes += size

    refs_by_block: dict[str, BlockRef] = {}
    for block, ref, ts in mine.refs:
        refs_by_block.setdefault(block, BlockRef(block, ref, part, ts))
    lost_here = set(mine.lost)
    for block, first_ref in sorted(refs_by_block.items()):
        if block in their_blocks or block in lost_here:
            continue
        try:
            data = await source.blocks.get(block)
        except (NoSuchBlock, CorruptBlock):
            # Missing or rotten here too (a corrupt one is now quarantined): mark it lost, so
            # this partition's digest asks another replica for it.
            await source.meta.set_lost([(block, part)], lost=True)
            continue
        await limiter.take(len(data))
        await target.put_block(block, data, first_ref)
        result.blocks += 1
        result.bytes += len(data)

    their_refs = {(block, ref) for block, ref, _ in theirs.refs}
    missing_refs = [BlockRef(block, ref, part, ts) for block, ref, ts in mine.refs if (block, ref) not in their_refs]
    for start in range(0, len(missing_refs), REF_BATCH):
        await target.put_refs(part, missing_refs[start:start + REF_BATCH])
        result.refs += len(missing_refs[start:start + REF_BATCH])

    result.confirmed_records = [(kind, name, ts, node) for kind, name, ts, node, _ in mine.records]
    result.confirmed_refs = [(block, ref) for block, ref, _ in mine.refs]
    return result
