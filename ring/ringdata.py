"""RingData: the immutable placement table a node serves with.

It holds only what placement needs: part power, replica count, salt, version, the devices
and the replica -> partition -> device id table. The builder's bookkeeping (last-moved
times, min_part_hours, removals in progress) stays in the builder. Rows are read-only
memoryviews over compact arrays (2 bytes a slot while device ids fit), so a node holds
2**16 partitions x 3 replicas in under 400 KiB and nothing can edit a table in use.
"""

from __future__ import annotations

import hashlib
import json
import sys
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from edgestore.ring.devices import Device
from edgestore.ring.errors import RingValidationError
from edgestore.ring.keys import MAX_PART_POWER

__all__ = ["NO_DEVICE", "RingData", "compact_rows", "rows_to_bytes"]

# The id stored in an unassigned slot (never a device id: ids stay below it).
NO_DEVICE = 0xFFFFFFFF


def compact_rows(rows: Iterable[array[int]]) -> tuple[memoryview, ...]:
    """Read-only copies of the rows, 2 bytes a slot when every id fits, else 4."""
    rows = list(rows)
    wide = any(len(row) and max(row) >= 0xFFFF for row in rows)
    typecode = "I" if wide else "H"
    return tuple(memoryview(array(typecode, row)).toreadonly() for row in rows)


def rows_to_bytes(rows: Iterable[array[int] | memoryview], width: int = 4) -> list[bytes]:
    """Each row as little-endian unsigned integers of `width` bytes (the file encoding)."""
    out = []
    for row in rows:
        arr = array("I" if width == 4 else "H", row)
        if sys.byteorder == "big":
            arr.byteswap()
        out.append(arr.tobytes())
    return out


@dataclass(frozen=True, eq=False)
class RingData:
    """Serialisable placement data; equal rings have equal `checksum`."""

    part_power: int
    replicas: int
    salt: bytes
    version: int
    devices: Mapping[int, Device]
    replica2part2dev: tuple[memoryview, ...]
    _dev_list: tuple[Device | None, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.part_power <= MAX_PART_POWER:
            raise RingValidationError(f"part power {self.part_power} out of range")
        if self.replicas < 1 or len(self.replica2part2dev) != self.replicas:
            raise RingValidationError(
                f"{len(self.replica2part2dev)} replica rows for {self.replicas} replicas")
        parts = 1 << self.part_power
        for replica, row in enumerate(self.replica2part2dev):
            if len(row) != parts:
                raise RingValidationError(
                    f"replica row {replica} has {len(row)} slots, expected {parts}",
                    replica=replica)
            if not row.readonly:
                raise RingValidationError("replica rows must be read-only (see compact_rows)")
        devices = MappingProxyType(dict(sorted(self.devices.items())))
        for dev_id, dev in devices.items():
            if dev.id != dev_id:
                raise RingValidationError(f"device keyed {dev_id} has id {dev.id}")
        size = max(devices, default=-1) + 1
        dev_list: list[Device | None] = [None] * size
        for dev_id, dev in devices.items():
            dev_list[dev_id] = dev
        for replica, row in enumerate(self.replica2part2dev):
            for dev_id in set(row):
                if dev_id >= size or dev_list[dev_id] is None:
                    raise RingValidationError(
                        f"replica row {replica} refers to unknown device {dev_id}",
                        replica=replica)
        object.__setattr__(self, "devices", devices)
        object.__setattr__(self, "_dev_list", tuple(dev_list))

    @property
    def partitions(self) -> int:
        """Number of partitions, 2**part_power."""
        return 1 << self.part_power

    def device(self, dev_id: int) -> Device | None:
        """The device with this id, or None."""
        if 0 <= dev_id < len(self._dev_list):
            return self._dev_list[dev_id]
        return None

    @cached_property
    def checksum(self) -> str:
        """sha256 over a canonical encoding: two nodes compare rings by this string."""
        header = json.dumps(
            {
                "part_power": self.part_power,
                "replicas": self.replicas,
                "salt": self.salt.hex(),
                "version": self.version,
                "devices": [dev.to_dict() for dev in self.devices.values()],
            },
            sort_keys=True, separators=(",", ":"),
        ).encode()
        digest = hashlib.sha256(header)
        for chunk in rows_to_bytes(self.replica2part2dev):
            digest.update(chunk)
        return "sha256:" + digest.hexdigest()
