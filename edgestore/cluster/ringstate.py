"""The ring a node serves with, and which of its devices are this node's own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgestore.ring import Device, Ring, load_ring

__all__ = ["RingState", "device_url", "device_url_for"]


def device_url(device: Device) -> str:
    return device_url_for(device.ip, device.port)


def device_url_for(ip: str, port: int) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


@dataclass
class RingState:
    path: Path
    ring: Ring

    @classmethod
    def load(cls, path: Path) -> RingState:
        return cls(path, load_ring(path))

    def reload(self) -> None:
        """Swap in the ring file's current contents (atomic: lookups see old or new)."""
        self.ring = load_ring(self.path)
