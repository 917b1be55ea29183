"""statfs for the mount: the cluster's capacity when it tells us (edgestore's /_admin/status,
with admin keys), else a large constant, so that tools checking free space go on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ClusterSpace", "space_from_status"]

log = logging.getLogger("edgestore.fuse")

UNKNOWN_TOTAL = 1 << 50  # 1 PiB: "plenty", for servers that do not say
REFRESH_S = 30.0


def space_from_status(status: dict[str, Any]) -> tuple[int, int]:
    """(total, free) bytes of user data: the devices of the nodes that are up, divided by the replicas."""
    total = used = 0
    for node in status.get("nodes", []):
        if not node.get("up"):
            continue
        for dev in node.get("devices", []):
            total += int(dev.get("disk_total_bytes", 0))
            used += int(dev.get("disk_used_bytes", 0))
    replicas = max(int(status.get("replicas", 1) or 1), 1)
    return total // replicas, max(total - used, 0) // replicas


class ClusterSpace:
    def __init__(self, status: Callable[[], dict[str, Any]] | None) -> None:
        self._status = status
        self._answer = (UNKNOWN_TOTAL, UNKNOWN_TOTAL)
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def get(self) -> tuple[int, int]:
        with self._lock:
            if self._status is None or time.monotonic() - self._checked < REFRESH_S:
                return self._answer
            self._checked = time.monotonic()
            try:
                total, free = space_from_status(self._status())
                if total > 0:
                    self._answer = (total, free)
            except Exception as exc:  # noqa: BLE001 - no statfs answer is worth failing the call for
                log.info("cluster status unavailable for statfs: %s", exc)
            return self._answer
