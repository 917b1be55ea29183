"""Scrub: re-read everything a node stores, slowly, and check it against its checksum —
SQLite's structure (quick_check), every record row (value and inline data), every block
file a reference names (against the checksum its id carries). SD cards rot where nobody reads.

What fails is taken out of service at once: a damaged database is moved aside and the
device starts afresh (as Swift quarantines a malformed container DB), a damaged row is
dropped, a rotten block file is quarantined. Each is then restored from a good replica
right away when one answers (a quorum read of the record; any intact replica of the
block), and otherwise by anti-entropy, since the partition's digest now differs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Any

from edgestore.cluster.coordinator import Coordinator
from edgestore.errors import ClusterError, CorruptBlock, NoSuchBlock, StoreError
from edgestore.repair.limiter import ByteRateLimiter
from edgestore.repair.progress import PassProgress, running_pass
from edgestore.store.device import LocalDevice

__all__ = ["Scrub", "ScrubProgress"]

log = logging.getLogger(__name__)


@dataclass
class ScrubProgress(PassProgress):
    partitions_checked: int = 0
    partitions_total: int = 0
    checked: int = 0          # rows and block files read
    bytes_checked: int = 0
    quarantined: int = 0      # damaged rows, block files and databases taken out of service
    repaired: int = 0         # of those, restored from a replica during the pass
    errors: int = 0


class Scrub:
    name = "scrub"

    def __init__(self, coordinator: Coordinator, interval_s: float, limiter: ByteRateLimiter) -> None:
        self.interval_s = interval_s
        self._coordinator = coordinator
        self._limiter = limiter
        self.progress = ScrubProgress()

    async def run_once(self, **options: Any) -> dict[str, Any]:
        with running_pass(ScrubProgress(), self.progress) as progress:
            self.progress = progress
            for device in list(self._coordinator.local_devices.values()):
                await self._scrub_device(device, progress)
        return asdict(progress)

    async def _scrub_device(self, device: LocalDevice, progress: ScrubProgress) -> None:
        if device.replaced():
            device.reopen()
        try:
            problems = await device.meta.integrity_problems()
        except StoreError as exc:
            problems = [str(exc)]
        if problems:
            log.error("scrub: database of device %s is damaged (%s): quarantining it", device.name, problems[:3])
            device.quarantine_database()
            progress.quarantined += 1
            return   # empty now: anti-entropy refills it
        try:
            parts = sorted(await device.meta.digests())
        except StoreError as exc:
            log.error("scrub: device %s unreadable: %s", device.name, exc)
            device.quarantine_database()
            progress.quarantined += 1
            return
        progress.partitions_total += len(parts)
        for part in parts:
            try:
                await self._scrub_partition(device, part, progress)
            except StoreError as exc:
                log.warning("scrub: partition %d of %s: %s", part, device.name, exc)
                progress.errors += 1
            progress.partitions_checked += 1

    async def _scrub_partition(self, device: LocalDevice, part: int, progress: ScrubProgress) -> None:
        damaged, size = await device.meta.damaged_rows(part)
        await self._limiter.take(size)
        index = await device.meta.partition_index(part)
        progress.checked += len(index.records)
        progress.bytes_checked += size
        if damaged:
            log.error("scrub: %d damaged records in partition %d of %s", len(damaged), part, device.name)
            await device.meta.remove_rows(damaged)
            progress.quarantined += len(damaged)
            for kind, name in damaged:
                if await self._restore_record(kind, name):
                    progress.repaired += 1
        lost = set(index.lost)
        for block in sorted({block for block, _, _ in index.refs} - lost):
            try:
                data = await device.blocks.get(block)
            except (NoSuchBlock, CorruptBlock) as exc:
                log.error("scrub: block %s of %s: %s", block, device.name, type(exc).__name__)
                await device.meta.set_lost([(block, part)], lost=True)
                progress.quarantined += 1
                lost.add(block)
                continue
            progress.checked += 1
            progress.bytes_checked += len(data)
            await self._limiter.take(len(data))
        for block in sorted(lost):
            if await self._restore_block(device, block, part):
                progress.repaired += 1

    async def _restore_record(self, kind: str, name: str) -> bool:
        """A quorum read finds the newest good copy and its read repair writes it back here."""
        try:
            return await self._coordinator.get_record(kind, name) is not None
        except (ClusterError, StoreError) as exc:
            log.info("scrub: %s %s not restored now (%s); anti-entropy will", kind, name, exc)
            return False

    async def _restore_block(self, device: LocalDevice, block: str, part: int) -> bool:
        try:
            data = await self._coordinator.get_block(block)
            async with device.block_lock(block):
                await device.blocks.put(block, data)
                await device.meta.set_lost([(block, part)], lost=False)
        except (ClusterError, StoreError) as exc:
            log.info("scrub: block %s not restored now (%s); anti-entropy will", block, exc)
            return False
        await asyncio.sleep(0)
        return True
