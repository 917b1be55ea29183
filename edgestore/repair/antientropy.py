"""Anti-entropy: the background pass that brings every partition back to full
replication, hands handoff partitions back to their primaries, and moves data to its
new owners after a ring change.

Each pass, for every device of this node: fetch each peer device's partition digests
(one request per peer), and for every partition where this device holds rows, push to
each replica whose digest differs (see partsync.py). A partition this device holds but
is not a primary of — it stood in for a failed primary, or the ring moved the partition
away — is pushed to every primary and then forgotten, once all of them took it.

A device whose directory was wiped or replaced under the running node is reopened empty
first; its peers' pushes refill it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Any

from edgestore.cluster.coordinator import Coordinator
from edgestore.errors import ClusterError, StoreError
from edgestore.repair.limiter import ByteRateLimiter
from edgestore.repair.partsync import PushResult, push_partition
from edgestore.repair.progress import PassProgress, running_pass
from edgestore.repair.replicas import Digests, LocalReplica, RemoteReplica, Replica
from edgestore.ring import Device
from edgestore.store.device import LocalDevice
from edgestore.store.meta import PartitionIndex

__all__ = ["AntiEntropy", "RepairProgress"]

log = logging.getLogger(__name__)

DeviceKey = tuple[str, int, str]
PEER_DIGESTS_TIMEOUT_S = 30.0


def _key(device: Device) -> DeviceKey:
    return (device.ip, device.port, device.device)


@dataclass
class RepairProgress(PassProgress):
    """What `status` shows of repair: the last finished pass and the one running."""
    ring_version: int = 0     # the ring this pass placed partitions by
    # (partition, replica) pairs whose digests differed when last looked at; handoff
    # partitions still held. Both reach zero when everything is fully replicated.
    out_of_sync: int = 0
    handoff_partitions: int = 0
    unreachable_peers: int = 0
    partitions_checked: int = 0
    partitions_total: int = 0
    records_sent: int = 0
    blocks_sent: int = 0
    refs_sent: int = 0
    bytes_sent: int = 0
    partitions_dropped: int = 0
    errors: int = 0


class AntiEntropy:
    name = "anti-entropy"

    def __init__(self, coordinator: Coordinator, interval_s: float, limiter: ByteRateLimiter,
                 concurrency: int = 4) -> None:
        self.interval_s = interval_s
        self._coordinator = coordinator
        self._limiter = limiter
        self._concurrency = concurrency
        self.progress = RepairProgress()

    def _replica(self, device: Device) -> Replica:
        local = self._coordinator.local_devices.get(_key(device))
        return LocalReplica(local) if local is not None else RemoteReplica(self._coordinator.client, device)

    async def _peer_digests(self, peers: list[Device]) -> dict[DeviceKey, Digests | None]:
        async def one(device: Device) -> Digests | None:
            try:
                async with asyncio.timeout(PEER_DIGESTS_TIMEOUT_S):
                    return await self._replica(device).digests()
            except (ClusterError, StoreError, TimeoutError) as exc:
                log.info("anti-entropy: %s unreachable: %s", _key(device), exc)
                return None
        answers = await asyncio.gather(*(one(d) for d in peers))
        return {_key(d): a for d, a in zip(peers, answers, strict=True)}

    async def run_once(self, **options: Any) -> dict[str, Any]:
        ring = self._coordinator.ring_state.ring
        with running_pass(RepairProgress(), self.progress) as progress:
            self.progress = progress
            progress.ring_version = ring.version
            for device in list(self._coordinator.local_devices.values()):
                if device.replaced():
                    device.reopen()
            peers = [d for d in ring.devices if _key(d) not in self._coordinator.local_devices]
            digests = await self._peer_digests(peers)
            progress.unreachable_peers = sum(1 for d in digests.values() if d is None)
            for key, device in self._coordinator.local_devices.items():
                digests[key] = await device.meta.digests()
            progress.partitions_total = ring.partitions * len(self._coordinator.local_devices)
            for key, device in self._coordinator.local_devices.items():
                await self._device_pass(key, device, digests, progress)
        return asdict(progress)

    async def _device_pass(self, key: DeviceKey, device: LocalDevice,
                           digests: dict[DeviceKey, Digests | None], progress: RepairProgress) -> None:
        ring = self._coordinator.ring_state.ring
        mine = digests[key] or {}
        work: list[tuple[int, list[Device], bool]] = []
        for part in range(ring.partitions):
            progress.partitions_checked += 1
            primaries = ring.primaries(part)
            is_primary = any(_key(d) == key for d in primaries)
            if not is_primary and part not in mine:
                continue
            others = [d for d in primaries if _key(d) != key]
            differing = []
            for peer in others:
                theirs = digests.get(_key(peer))
                if theirs is None:
                    continue   # down: counted as unreachable, retried next pass
                if theirs.get(part) != mine.get(part):
                    differing.append(peer)
            if is_primary:
                progress.out_of_sync += len(differing)
                if differing and part in mine:
                    work.append((part, differing, False))
            else:
                progress.handoff_partitions += 1
                work.append((part, others, True))
            if part % 256 == 255:
                await asyncio.sleep(0)   # long rings: let requests in between
        semaphore = asyncio.Semaphore(self._concurrency)

        async def sync(part: int, targets: list[Device], handoff: bool) -> None:
            async with semaphore:
                await self._sync_partition(key, device, part, targets, handoff, digests, progress)
        await asyncio.gather(*(sync(*w) for w in work))

    async def _sync_partition(self, key: DeviceKey, device: LocalDevice, part: int, targets: list[Device],
                              handoff: bool,
                              digests: dict[DeviceKey, Digests | None], progress: RepairProgress) -> None:
        index = await device.meta.partition_index(part)
        mine = (digests.get(key) or {}).get(part)
        all_confirmed = True
        total = PushResult()
        for target in targets:
            theirs = digests.get(_key(target))
            if theirs is None:
                all_confirmed = False
                continue
            if mine is not None and theirs.get(part) == mine:
                continue   # already identical (a handoff's primary that has it all)
            try:
                result = await push_partition(device, part, self._replica(target), self._limiter, index)
            except (ClusterError, StoreError) as exc:
                log.info("anti-entropy: partition %d to %s failed: %s", part, _key(target), exc)
                progress.errors += 1
                all_confirmed = False
                continue
            total.add(result)
        progress.records_sent += total.records
        progress.blocks_sent += total.blocks
        progress.refs_sent += total.refs
        progress.bytes_sent += total.bytes
        if handoff and all_confirmed and targets:
            await self._forget(device, part, index)
            progress.partitions_dropped += 1

    async def _forget(self, device: LocalDevice, part: int, index: PartitionIndex) -> None:
        """Drop a handed-back partition: exactly the versions every primary now has."""
        records = [(kind, name, ts, node) for kind, name, ts, node, _ in index.records]
        refs = [(block, ref) for block, ref, _ in index.refs]
        await device.meta.drop_partition_rows(part, records, refs)
        for block in await device.meta.unreferenced({block for block, _ in refs}):
            await device.blocks.delete(block)
        log.info("anti-entropy: handed partition %d of %s back to its primaries", part, device.name)
