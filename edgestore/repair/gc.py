"""Garbage collection: tombstones past the reclaim age, and blocks no object uses any more.

Blocks are shared (copies, versions, multipart parts taken over by their object), so a
block is deleted only when every reference to it is found dead by quorum reads: the
record that wrote it no longer lists it (nor does any version of it, nor — for a part —
the object that took it over), and no copy recorded in the `datause` index uses it. Only
candidates are looked at — blocks an overwrite or delete may have freed, and every block
once after it was stored (an upload that never wrote its record leaves its blocks to no
one) — and only after a grace period, so uploads still in flight and copies being made
finish first; a body that takes longer than half of it to arrive is refused
(model/objects.py). Most candidates of the second kind belong to live objects: one live
reference on the candidate's own device settles them, with the object's record read once
per pass for all its blocks. A block is deleted only when every primary of its partition answers,
each under its device's block lock, and only if no new reference arrived meanwhile.

Tombstones older than the reclaim age are deleted, as Swift's reclaim_age does: a replica
that was away for longer than that can bring a deleted object back, so the age is long
(7 days by default).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from edgestore.clock import seconds_to_ts
from edgestore.cluster.coordinator import Coordinator
from edgestore.cluster.ringstate import device_url
from edgestore.errors import ClusterError, StoreError
from edgestore.repair.progress import PassProgress, running_pass
from edgestore.ring import Device
from edgestore.store.device import LocalDevice
from edgestore.store.records import (
    KIND_DATAUSE,
    KIND_OBJECT,
    KIND_PART,
    KIND_VERSION,
    VERSION_SEPARATOR,
    Record,
    block_path,
    placement_path,
)

__all__ = ["GarbageCollector", "GcProgress"]

log = logging.getLogger(__name__)

_LISTED_MAX = 1024


@dataclass
class GcProgress(PassProgress):
    tombstones_reclaimed: int = 0
    checked: int = 0            # candidate blocks looked at
    collected: int = 0          # blocks deleted (on every replica)
    in_use: int = 0
    deferred: int = 0           # a replica did not answer: tried again next pass
    errors: int = 0


def _lists_block(record: Record | None, data_id: str, block: str) -> bool:
    if record is None or record.deleted or str(record.value.get("data_id", "")) != data_id:
        return False
    return any(entry[0] == block for entry in record.value.get("blocks", []))


class GarbageCollector:
    name = "gc"

    def __init__(self, coordinator: Coordinator, interval_s: float, grace_s: float, reclaim_age_s: float,
                 concurrency: int = 4) -> None:
        self.interval_s = interval_s
        self._concurrency = max(1, concurrency)
        self._coordinator = coordinator
        self._grace_s = grace_s
        self._reclaim_age_s = reclaim_age_s
        self.progress = GcProgress()
        # "record name#data_id" -> the blocks that live record lists, as read in this
        # device's turn of a pass. Only ever used to say "in use" (a stale entry can only
        # keep a block one pass longer), and dropped at each turn, long before the grace
        # period could let a change it missed come up as a candidate.
        self._listed: dict[str, frozenset[str]] = {}

    async def run_once(self, grace_s: float | None = None, reclaim_age_s: float | None = None,
                       **options: Any) -> dict[str, Any]:
        grace = self._grace_s if grace_s is None else float(grace_s)
        reclaim_age = self._reclaim_age_s if reclaim_age_s is None else float(reclaim_age_s)
        with running_pass(GcProgress(), self.progress) as progress:
            self.progress = progress
            for device in list(self._coordinator.local_devices.values()):
                self._listed.clear()
                progress.tombstones_reclaimed += await device.meta.reclaim_tombstones(
                    seconds_to_ts(time.time() - reclaim_age))
                settled = seconds_to_ts(time.time() - grace)
                while True:
                    candidates = await device.meta.gc_candidates(settled)
                    if not candidates:
                        break
                    done = await self._decide(device, candidates, settled, progress)
                    await device.meta.drop_gc_candidates(done)
                    if len(done) < len(candidates):
                        break   # the rest waits for the next pass
        return asdict(progress)

    async def _decide(self, holder: LocalDevice, candidates: Sequence[tuple[str, int]], settled: int,
                      progress: GcProgress) -> list[tuple[str, int]]:
        """Decide on a batch of candidates, several at once: a dead block's decision is a
        chain of round trips to its replicas (references, records, then the deletes).
        Returns the candidates decided (the rest are tried again next pass)."""
        slots = asyncio.Semaphore(self._concurrency)
        done: list[tuple[str, int]] = []

        async def decide(block: str, since: int) -> None:
            async with slots:
                try:
                    outcome = await self._consider(holder, block, settled)
                except (ClusterError, StoreError) as exc:
                    log.info("gc: block %s not decided: %s", block, exc)
                    outcome = "deferred"
            progress.checked += 1
            setattr(progress, outcome, getattr(progress, outcome) + 1)
            if outcome != "deferred":
                done.append((block, since))
        # In an order of this pass's own: each replica of a record or block holds the same
        # candidates, and the nodes' passes often run at the same time. In one order they
        # would all take each dead block's full decision at once; in their own, the later
        # ones mostly find it collected already, which takes a few requests, not a dozen.
        await asyncio.gather(*(decide(block, since) for block, since in random.sample(candidates, len(candidates))))
        return done

    # -- one block ---------------------------------------------------------------------

    async def _consider(self, holder: LocalDevice, block: str, settled: int) -> str:
        # References whose own object was found not to use the block in this decision: not
        # asked again. (Only within it: a later "not used" could miss a copy made since.)
        unused: set[str] = set()
        if await self._used_by_local_ref(holder, block, settled, unused):
            return "in_use"
        ring = self._coordinator.ring_state.ring
        primaries = ring.primaries(ring.partition_for_path(block_path(block)))
        refs: dict[str, int] = {}
        for device in primaries:
            for ref, ts in await self._refs_on(device, block):
                refs[ref] = max(ts, refs.get(ref, 0))
        if any(ts >= settled for ts in refs.values()):
            return "in_use"      # written within the grace period: an upload may be in flight
        for ref in refs:
            if await self._ref_live(ref, block, settled, ref in unused):
                return "in_use"
        for device in primaries:
            await self._collect_on(device, block, set(refs))
        log.info("gc: collected block %s (%d dead references)", block, len(refs))
        return "collected"

    async def _used_by_local_ref(self, holder: LocalDevice, block: str, settled: int, unused: set[str]) -> bool:
        """A reference on the candidate's own device that is recent, or whose record
        lists the block: in use, found without asking the other replicas. Adds the
        references found not to be used so to `unused`."""
        refs = await holder.meta.block_refs(block)
        if any(ts >= settled for _, ts in refs):
            return True
        for ref, _ in refs:
            name, _, data_id = ref.rpartition("#")
            if name and await self._object_uses(name, data_id, block):
                return True
            unused.add(ref)
        return False

    async def _ref_live(self, ref: str, block: str, settled: int, object_checked: bool = False) -> bool:
        """Is the version that wrote `block` under `ref` ("record name#data_id"), or any
        object that took it over or copied it, still using it? `object_checked`: the
        version's own object was just found not to."""
        name, _, data_id = ref.rpartition("#")
        if not name:
            return True     # not a reference this code wrote: never guess
        if not object_checked and await self._object_uses(name, data_id, block):
            return True
        part = await self._coordinator.get_record(KIND_PART, name) if name.count("/") >= 3 else None
        if _lists_block(part, data_id, block):
            return True     # an upload in progress
        if part is not None and part.deleted and part.value.get("completed_into"):
            owner, _, owner_data = str(part.value["completed_into"]).rpartition("#")
            if await self._object_uses(owner, owner_data, block) or \
                    await self._copies_use(owner_data, block, settled):
                return True
        return await self._copies_use(data_id, block, settled)

    async def _object_uses(self, name: str, data_id: str, block: str) -> bool:
        """The object at `name`, or one of its versions, lists the block under data_id."""
        ref = f"{name}#{data_id}"
        if block in self._listed.get(ref, ()):
            return True
        current = await self._coordinator.get_record(KIND_OBJECT, name)
        if current is not None and _lists_block(current, data_id, block):
            if len(self._listed) >= _LISTED_MAX:
                self._listed.clear()
            self._listed[ref] = frozenset(entry[0] for entry in current.value["blocks"])
            return True
        async for version in self._coordinator.iter_records(KIND_VERSION, placement_path(KIND_VERSION, name),
                                                            name + VERSION_SEPARATOR):
            if _lists_block(version, data_id, block):
                return True
        return False

    async def _copies_use(self, data_id: str, block: str, settled: int) -> bool:
        prefix = data_id + "/"
        path = placement_path(KIND_DATAUSE, prefix)
        seen: set[tuple[str, int]] = set()
        async for entry in self._coordinator.iter_records(KIND_DATAUSE, path, prefix):
            if entry.deleted:
                continue
            seen.add((entry.name, entry.ts))
            if await self._object_uses(entry.name[len(prefix):], data_id, block):
                return True
            if entry.ts < settled:
                # A copy made longer ago than the grace period whose object no longer
                # uses the data (overwritten, deleted, or the copy failed): its entry goes.
                # The tombstone is stamped just after the entry, never restamped, so a
                # new copy of the same data to the same name (a newer entry) wins.
                await self._coordinator.put_records(
                    path, [Record(KIND_DATAUSE, entry.name, entry.ts + 1, entry.node, deleted=True)], restamp=False)
        if not seen:
            return False
        # A copy of one of those copies (a renamed file renamed again) may have been made
        # after the listing passed its place and before its source was found gone. The
        # copy wrote its entry before it checked that source (Objects._share_blocks), and
        # the source went only after that, so listing again now finds the entry.
        async for entry in self._coordinator.iter_records(KIND_DATAUSE, path, prefix):
            if not entry.deleted and (entry.name, entry.ts) not in seen:
                return True
        return False

    # -- the block's replicas ------------------------------------------------------------

    async def _refs_on(self, device: Device, block: str) -> list[tuple[str, int]]:
        local = self._coordinator.local_devices.get((device.ip, device.port, device.device))
        if local is not None:
            return list(await local.meta.block_refs(block))
        status, answer = await self._coordinator.client.request_json(
            "GET", device_url(device), f"/_internal/{device.device}/block/{block}/refs")
        if status != 200:
            raise ClusterError(f"{device_url(device)}: refs of {block} answered {status}")
        return [(str(r), int(t)) for r, t in answer]

    async def _collect_on(self, device: Device, block: str, dead: set[str]) -> None:
        local = self._coordinator.local_devices.get((device.ip, device.port, device.device))
        if local is not None:
            await local.collect_block(block, dead)
            return
        status, _ = await self._coordinator.client.request_json(
            "POST", device_url(device), f"/_internal/{device.device}/block/{block}/collect", None, sorted(dead))
        if status != 200:
            raise ClusterError(f"{device_url(device)}: collect of {block} answered {status}")
