"""What a node reports about itself for `edgestore status`: ring version, devices with
partitions held, disk use and quarantined items, and the background passes' progress."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import asdict
from typing import Any

from edgestore.cluster.coordinator import Coordinator
from edgestore.repair.antientropy import AntiEntropy

__all__ = ["node_status"]


async def node_status(node_id: str, coordinator: Coordinator, anti_entropy: AntiEntropy,
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
    ring = coordinator.ring_state.ring
    in_ring = {(d.ip, d.port, d.device): d for d in ring.devices}
    devices = []
    for key, device in sorted(coordinator.local_devices.items()):
        digests = await device.meta.digests()
        ring_device = in_ring.get(key)
        primary = 0
        if ring_device is not None:
            primary = sum(1 for part in range(ring.partitions)
                          if any(d.id == ring_device.id for d in ring.primaries(part)))
        try:
            total, used, free = await asyncio.to_thread(shutil.disk_usage, device.path)
            meta_bytes = sum(p.stat().st_size for p in device.path.glob("meta.db*") if p.is_file())
            quarantined = await asyncio.to_thread(device.blocks.quarantined)
        except OSError:   # wiped under us: the next repair pass reopens it
            total = used = free = meta_bytes = quarantined = 0
        devices.append({
            "name": device.name, "path": str(device.path),
            "in_ring": ring_device is not None, "weight": ring_device.weight if ring_device else 0.0,
            "partitions_held": len(digests), "primary_partitions": primary,
            "rows": sum(rows for _, rows in digests.values()),
            "disk_total_bytes": total, "disk_used_bytes": used, "disk_free_bytes": free,
            "meta_bytes": meta_bytes,
            "quarantined": quarantined, "replaced": device.replaced(),
            "lost_blocks": await device.meta.lost_count(),
        })
    return {"node": node_id, "up": True, "ring_version": ring.version, "devices": devices,
            "repair": asdict(anti_entropy.progress), **(extra or {})}
