"""RingBuilder: the mutable ring an operator edits offline and rebalances.

It owns the devices, the assignment (replica -> partition -> device id, compact arrays),
the time each partition last moved, min_part_hours, the cluster's hash salt and the ring
version. Nodes never see a builder: they get the `RingData` it makes.

Device ids are handed out in increasing order and never reused, so an old ring or a log
line naming device 7 can never be mistaken for a different disk. Removing a device sets
its weight to 0 and marks it; the next rebalance moves its replicas away (whatever
min_part_hours says) and then forgets it.
"""

from __future__ import annotations

import math
import os
import random
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from edgestore.ring.devices import Device
from edgestore.ring.errors import (
    DeviceRemoved,
    DuplicateDevice,
    InvalidRingParameter,
    NotRebalanced,
    RebalanceError,
    RingValidationError,
    UnknownDevice,
)
from edgestore.ring.keys import MAX_PART_POWER
from edgestore.ring.plan import Plan, build_plan
from edgestore.ring.rebalance import Rebalancer
from edgestore.ring.ringdata import NO_DEVICE, RingData, compact_rows

__all__ = ["MAX_BALANCE", "NEVER_MOVED", "RebalanceResult", "RingBuilder", "SALT_BYTES"]

SALT_BYTES = 16
NEVER_MOVED = -math.inf  # last-moved time of a partition that may move at any time
MAX_BALANCE = 999.99  # Swift's balance for a ring that is not balanced at all
MAX_REPLICAS = 16


@dataclass(frozen=True)
class RebalanceResult:
    """What one rebalance did: replicas moved, resulting balance (%), ring version."""

    moved: int
    balance: float
    version: int


def _check_min_part_hours(hours: object) -> int:
    if isinstance(hours, bool) or not isinstance(hours, int) or hours < 0:
        raise InvalidRingParameter("min_part_hours", hours, "must be an integer >= 0")
    return hours


class RingBuilder:
    """Devices, weights and the partition assignment, with Swift's rebalance semantics."""

    def __init__(self, part_power: int, replicas: int, min_part_hours: int = 1,
                 salt: bytes | None = None) -> None:
        if isinstance(part_power, bool) or not isinstance(part_power, int) \
                or not 0 <= part_power <= MAX_PART_POWER:
            raise InvalidRingParameter(
                "part power", part_power, f"must be an integer from 0 to {MAX_PART_POWER}")
        if isinstance(replicas, bool) or not isinstance(replicas, int) \
                or not 1 <= replicas <= MAX_REPLICAS:
            raise InvalidRingParameter(
                "replicas", replicas, f"must be an integer from 1 to {MAX_REPLICAS}")
        if salt is None:
            salt = os.urandom(SALT_BYTES)
        if not isinstance(salt, bytes) or not salt:
            raise InvalidRingParameter("salt", salt, "must be non-empty bytes")
        self._part_power = part_power
        self._replicas = replicas
        self._min_part_hours = _check_min_part_hours(min_part_hours)
        self._salt = salt
        self._version = 0
        self._next_dev_id = 0
        self._devs: dict[int, Device] = {}
        self._removed: set[int] = set()
        parts = 1 << part_power
        self._rows = [array("I", [NO_DEVICE]) * parts for _ in range(replicas)]
        self._last_moved = array("d", [NEVER_MOVED]) * parts

    @classmethod
    def from_state(cls, *, part_power: int, replicas: int, min_part_hours: int, salt: bytes,
                   version: int, next_dev_id: int, devices: Iterable[Device],
                   removed: Iterable[int], rows: Sequence[array[int]],
                   last_moved: array[float]) -> RingBuilder:
        """Rebuild a builder from saved state (the ring file); `validate()` is not run, so
        a file saved between a device change and its rebalance loads as it was."""
        builder = cls(part_power, replicas, min_part_hours, salt)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise RingValidationError(f"version {version!r} must be an integer >= 0")
        builder._version = version
        builder._devs = {dev.id: dev for dev in sorted(devices, key=lambda d: d.id)}
        builder._removed = set(removed)
        if isinstance(next_dev_id, bool) or not isinstance(next_dev_id, int) \
                or next_dev_id < max(builder._devs, default=-1) + 1:
            raise RingValidationError(f"next device id {next_dev_id!r} is below a used id")
        builder._next_dev_id = next_dev_id
        parts = 1 << part_power
        if len(rows) != replicas or any(len(row) != parts for row in rows):
            raise RingValidationError("assignment rows do not match part power and replicas")
        if len(last_moved) != parts:
            raise RingValidationError("last-moved times do not match the part power")
        if not builder._removed <= set(builder._devs):
            raise RingValidationError("a removed device id is not a known device")
        builder._rows = [array("I", row) for row in rows]
        builder._last_moved = array("d", last_moved)
        return builder

    # -- read-only views ---------------------------------------------------------------

    @property
    def part_power(self) -> int:
        """log2 of the number of partitions."""
        return self._part_power

    @property
    def partitions(self) -> int:
        """Number of partitions, 2**part_power."""
        return 1 << self._part_power

    @property
    def replicas(self) -> int:
        """Replicas of each partition."""
        return self._replicas

    @property
    def min_part_hours(self) -> int:
        """Hours a partition must rest after one of its replicas moved."""
        return self._min_part_hours

    @property
    def salt(self) -> bytes:
        """The cluster's hash salt (placement key = xxh3_64(salt + path))."""
        return self._salt

    @property
    def version(self) -> int:
        """Bumped by every device change and every rebalance that changes the ring."""
        return self._version

    @property
    def next_dev_id(self) -> int:
        """The id the next added device gets."""
        return self._next_dev_id

    @property
    def devices(self) -> tuple[Device, ...]:
        """All devices by id, including removed ones not yet drained (weight 0)."""
        return tuple(self._devs.values())

    @property
    def removed_device_ids(self) -> tuple[int, ...]:
        """Removed devices that the next rebalance drains and forgets."""
        return tuple(sorted(self._removed))

    @property
    def rebalanced(self) -> bool:
        """Whether every slot of the assignment holds a device."""
        return not any(NO_DEVICE in row for row in self._rows)

    def device(self, dev_id: int) -> Device:
        """The device with this id; `UnknownDevice` if there is none."""
        try:
            return self._devs[dev_id]
        except KeyError:
            raise UnknownDevice(dev_id) from None

    def rows(self) -> tuple[array[int], ...]:
        """Copies of the assignment rows (replica -> partition -> device id)."""
        return tuple(array("I", row) for row in self._rows)

    def last_moved(self) -> array[float]:
        """A copy of each partition's last-moved time (-inf: may move any time)."""
        return array("d", self._last_moved)

    def assignments(self) -> list[list[int]]:
        """For each partition, the device ids of its replicas in replica order."""
        return [list(devs) for devs in zip(*self._rows, strict=True)]

    def parts_by_device(self) -> dict[int, int]:
        """Partition-replicas held by each known device."""
        counts: Counter[int] = Counter()
        for row in self._rows:
            counts.update(row)
        return {dev_id: counts.get(dev_id, 0) for dev_id in self._devs}

    def weight_shares(self) -> dict[int, float]:
        """Partition-replicas each device with weight > 0 would hold if only weight counted."""
        total = sum(dev.weight for dev in self._devs.values())
        slots = self.partitions * self._replicas
        return {dev.id: slots * dev.weight / total
                for dev in self._devs.values() if dev.weight > 0}

    def plan(self) -> Plan:
        """The dispersion-aware targets the next rebalance aims for (see `plan.py`)."""
        weighted = [dev for dev in self._devs.values() if dev.weight > 0]
        if not weighted:
            raise RebalanceError("no device has a weight above 0")
        return build_plan(weighted, self._replicas)

    def target_parts(self) -> dict[int, float]:
        """Partition-replicas the next rebalance aims to give each device (0 for weight 0)."""
        plan = self.plan()
        return {dev_id: plan.device_target(dev_id) * self.partitions for dev_id in self._devs}

    @property
    def balance(self) -> float:
        """Largest deviation (%) of a weighted device's partition-replicas from its weight
        share: max |100 * (parts / share - 1)|, as Swift defines it; 0 with no weight."""
        shares = self.weight_shares()
        if not shares:
            return 0.0
        parts = self.parts_by_device()
        worst = 0.0
        for dev_id, share in shares.items():
            worst = max(worst, abs(100.0 * (parts[dev_id] / share - 1.0)))
        return min(worst, MAX_BALANCE) if self.rebalanced else MAX_BALANCE

    # -- device changes ------------------------------------------------------------------

    def _active(self, dev_id: int) -> Device:
        dev = self.device(dev_id)
        if dev_id in self._removed:
            raise DeviceRemoved(dev_id)
        return dev

    def add_device(self, *, region: int, zone: int, ip: str, port: int, device: str,
                   weight: float) -> int:
        """Add a device and return its new id. The next rebalance gives it partitions."""
        dev = Device(id=self._next_dev_id, region=region, zone=zone, ip=ip, port=port,
                     device=device, weight=weight)
        for other in self._devs.values():
            if other.id not in self._removed and (other.ip, other.port, other.device) == (
                    dev.ip, dev.port, dev.device):
                raise DuplicateDevice(dev.address, other.id)
        if dev.id >= NO_DEVICE:
            raise RebalanceError("device ids are exhausted")
        self._devs[dev.id] = dev
        self._next_dev_id += 1
        self._version += 1
        return dev.id

    def set_weight(self, dev_id: int, weight: float) -> None:
        """Change a device's weight; 0 drains it at the next rebalance but keeps it."""
        dev = self._active(dev_id)
        self._devs[dev_id] = replace(dev, weight=weight)
        self._version += 1

    def remove_device(self, dev_id: int) -> None:
        """Remove a device: weight 0 now, drained and forgotten by the next rebalance."""
        dev = self._active(dev_id)
        self._devs[dev_id] = replace(dev, weight=0.0)
        self._removed.add(dev_id)
        self._version += 1

    def set_min_part_hours(self, hours: int) -> None:
        """Set how long a partition rests after a move before it may move again."""
        self._min_part_hours = _check_min_part_hours(hours)

    def pretend_min_part_hours_passed(self) -> None:
        """Let every partition move at the next rebalance (an operator's override, e.g.
        after confirming replication has caught up early)."""
        self._last_moved = array("d", [NEVER_MOVED]) * self.partitions

    # -- rebalance -----------------------------------------------------------------------

    def rebalance(self, seed: int | None = None, now: float | None = None) -> RebalanceResult:
        """Reassign partitions: dispersion first, then weight, moving as few replicas as
        possible and no partition moved less than min_part_hours ago (except replicas on
        removed or zero-weight devices, which always move). The same builder, seed and
        `now` give the same result. Nothing changes if it raises."""
        now = time.time() if now is None else float(now)
        rng = random.Random(seed)
        plan = self.plan()
        rows = [array("I", row) for row in self._rows]
        last_moved = array("d", self._last_moved)
        Rebalancer(rows, last_moved, plan, min_part_seconds=self._min_part_hours * 3600.0,
                   now=now, rng=rng).run()
        moved = sum(sum(1 for old, new in zip(before, after, strict=True) if old != new)
                    for before, after in zip(self._rows, rows, strict=True))
        devs = {dev_id: dev for dev_id, dev in self._devs.items() if dev_id not in self._removed}
        _validate(self._replicas, self._part_power, devs, set(), rows, last_moved,
                  self._next_dev_id)
        changed = moved > 0 or bool(self._removed)
        self._rows = rows
        self._last_moved = last_moved
        self._devs = devs
        self._removed = set()
        if changed:
            self._version += 1
        return RebalanceResult(moved=moved, balance=self.balance, version=self._version)

    def describe(self) -> dict[str, Any]:
        """The builder as operators read it, JSON-ready (`ring show --json`, the admin API)."""
        parts = self.parts_by_device()
        return {
            "part_power": self._part_power,
            "partitions": self.partitions,
            "replicas": self._replicas,
            "version": self._version,
            "balance": self.balance,
            "min_part_hours": self._min_part_hours,
            "devices": [dict(dev.to_dict(), parts=parts[dev.id]) for dev in self._devs.values()],
            "removed": list(self.removed_device_ids),
        }

    def validate(self) -> None:
        """Re-check every invariant of a rebalanced builder; `RingValidationError` if one
        fails: every slot holds a known device that is not removed, each partition's
        replicas are on distinct devices when enough weighted devices exist, and the
        arrays and ids are consistent."""
        _validate(self._replicas, self._part_power, self._devs, self._removed, self._rows,
                  self._last_moved, self._next_dev_id)

    def to_ringdata(self) -> RingData:
        """The immutable placement data nodes serve with; `NotRebalanced` before the first
        rebalance."""
        if not self.rebalanced:
            raise NotRebalanced("the ring has not been rebalanced yet")
        return RingData(
            part_power=self._part_power,
            replicas=self._replicas,
            salt=self._salt,
            version=self._version,
            devices=dict(self._devs),
            replica2part2dev=compact_rows(self._rows),
        )


def _validate(replicas: int, part_power: int, devs: dict[int, Device], removed: set[int],
              rows: Sequence[array[int]], last_moved: array[float], next_dev_id: int) -> None:
    """The invariants behind `RingBuilder.validate`, on any candidate state."""
    parts = 1 << part_power
    if len(rows) != replicas:
        raise RingValidationError(f"{len(rows)} assignment rows for {replicas} replicas")
    for replica, row in enumerate(rows):
        if len(row) != parts:
            raise RingValidationError(
                f"replica {replica} has {len(row)} slots, expected {parts}", replica=replica)
    if len(last_moved) != parts:
        raise RingValidationError(f"{len(last_moved)} last-moved times for {parts} partitions")
    for dev_id, dev in devs.items():
        if dev.id != dev_id or not 0 <= dev_id < next_dev_id:
            raise RingValidationError(f"device {dev_id} has a bad id (next id {next_dev_id})")
    for replica, row in enumerate(rows):
        for dev_id in set(row):
            if dev_id not in devs or dev_id in removed:
                part = row.index(dev_id)
                what = ("unassigned" if dev_id == NO_DEVICE else
                        f"on removed device {dev_id}" if dev_id in removed else
                        f"on unknown device {dev_id}")
                raise RingValidationError(
                    f"partition {part} replica {replica} is {what}", part=part, replica=replica)
    weighted = sum(1 for dev in devs.values() if dev.weight > 0)
    if weighted >= replicas and replicas > 1:
        for part, part_devs in enumerate(zip(*rows, strict=True)):
            if len(set(part_devs)) != replicas:
                raise RingValidationError(
                    f"partition {part} has replicas on the same device: {list(part_devs)}",
                    part=part)
