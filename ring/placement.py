"""Ring: the lookup object on the hot path of every request.

Construction does all the indexing once (a device list indexed by id, each device's tiers,
a fixed handoff order), so a lookup is one xxh3 hash, a shift and `replicas` array reads.
The ring never reloads itself: whoever holds it swaps in a new one.
"""

from __future__ import annotations

from collections.abc import Iterator

import xxhash
from edgestore.ring.devices import Device
from edgestore.ring.errors import RingError
from edgestore.ring.keys import partition_for_key, path_for
from edgestore.ring.ringdata import RingData

__all__ = ["Ring"]

_intdigest = xxhash.xxh3_64_intdigest


class Ring:
    """Placement queries over one `RingData`."""

    __slots__ = (
        "_data", "_part_shift", "_salt", "_rows", "_devs", "_order", "_regions", "_zones",
        "_nodes",
    )

    def __init__(self, data: RingData) -> None:
        self._data = data
        self._part_shift = 64 - data.part_power
        self._salt = data.salt
        self._rows = data.replica2part2dev
        size = max(data.devices, default=-1) + 1
        devs: list[Device | None] = [None] * size
        for dev_id, dev in data.devices.items():
            devs[dev_id] = dev
        self._devs = tuple(devs)
        # Handoff candidates in one fixed pseudo-random cycle; each partition starts the
        # cycle at its own offset, so the load of a failed device spreads over the cluster
        # and every node derives the same order without sorting per request.
        weighted = [dev for dev in data.devices.values() if dev.weight > 0]
        weighted.sort(key=lambda dev: (_intdigest(data.salt + dev.id.to_bytes(4, "little")),
                                       dev.id))
        self._order = tuple(weighted)
        self._regions = frozenset(dev.region for dev in weighted)
        self._zones = frozenset((dev.region, dev.zone) for dev in weighted)
        self._nodes = frozenset(dev.node for dev in weighted)

    # -- what the ring is --------------------------------------------------------------

    @property
    def data(self) -> RingData:
        """The immutable data this ring serves."""
        return self._data

    @property
    def part_power(self) -> int:
        """log2 of the number of partitions."""
        return self._data.part_power

    @property
    def partitions(self) -> int:
        """Number of partitions."""
        return self._data.partitions

    @property
    def replicas(self) -> int:
        """Replicas of each partition."""
        return self._data.replicas

    @property
    def version(self) -> int:
        """Ring version: nodes gossip it and never go back to an older one."""
        return self._data.version

    @property
    def checksum(self) -> str:
        """Checksum of the ring data (see `RingData.checksum`)."""
        return self._data.checksum

    @property
    def devices(self) -> tuple[Device, ...]:
        """Every device in the ring, by id."""
        return tuple(dev for dev in self._devs if dev is not None)

    def device(self, dev_id: int) -> Device | None:
        """The device with this id, or None."""
        if 0 <= dev_id < len(self._devs):
            return self._devs[dev_id]
        return None

    # -- keys -> partitions --------------------------------------------------------------

    def partition_for_path(self, path: str) -> int:
        """Partition of a Swift-style path such as `/account/container/object`."""
        return _intdigest(self._salt + path.encode("utf-8")) >> self._part_shift

    def partition_for_key(self, key: bytes) -> int:
        """Partition of an already encoded key (e.g. a block's content hash)."""
        return partition_for_key(self._salt, key, self._data.part_power)

    def partition(self, account: str, container: str | None = None,
                  obj: str | None = None) -> int:
        """Partition of an account, a container or an object."""
        return self.partition_for_path(path_for(account, container, obj))

    def lookup(self, account: str, container: str | None = None,
               obj: str | None = None) -> tuple[int, list[Device]]:
        """(partition, primaries) of an account, a container or an object."""
        part = self.partition(account, container, obj)
        return part, self.primaries(part)

    # -- partitions -> devices -----------------------------------------------------------

    def _check_part(self, part: int) -> None:
        if not 0 <= part < self._data.partitions:
            raise RingError(f"partition {part} out of range 0..{self._data.partitions - 1}")

    def primaries(self, part: int) -> list[Device]:
        """The devices that hold the replicas of `part`, in replica order."""
        self._check_part(part)
        devs = self._devs
        return [devs[row[part]] for row in self._rows]  # type: ignore[misc]

    def get_part_devices(self, part: int) -> list[Device]:
        """Swift's name for `primaries`."""
        return self.primaries(part)

    def handoffs(self, part: int) -> Iterator[Device]:
        """Further devices for `part`, lazily, in an order every node agrees on.

        First devices in regions no primary (or earlier handoff) uses, then in unused
        zones, then on unused nodes (IPs), then any remaining device. Primaries and
        zero-weight devices are never yielded, and no device is yielded twice.
        """
        self._check_part(part)
        return self._handoffs(part)

    def _handoffs(self, part: int) -> Iterator[Device]:
        primaries = self.primaries(part)
        seen = {dev.id for dev in primaries}
        used_regions = {dev.region for dev in primaries}
        used_zones = {(dev.region, dev.zone) for dev in primaries}
        used_nodes = {dev.node for dev in primaries}
        order = self._order
        count = len(order)
        if count == 0:
            return
        start = _intdigest(self._salt + part.to_bytes(4, "little")) % count
        cycle = order[start:] + order[:start]

        def take(dev: Device) -> Device:
            seen.add(dev.id)
            used_regions.add(dev.region)
            used_zones.add((dev.region, dev.zone))
            used_nodes.add(dev.node)
            return dev

        if not self._regions <= used_regions:
            for dev in cycle:
                if dev.region not in used_regions and dev.id not in seen:
                    yield take(dev)
        if not self._zones <= used_zones:
            for dev in cycle:
                if (dev.region, dev.zone) not in used_zones and dev.id not in seen:
                    yield take(dev)
        if not self._nodes <= used_nodes:
            for dev in cycle:
                if dev.node not in used_nodes and dev.id not in seen:
                    yield take(dev)
        for dev in cycle:
            if dev.id not in seen:
                yield take(dev)
