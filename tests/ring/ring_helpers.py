"""Shared helpers for the ring tests: cluster layouts, Hypothesis strategies, oracles."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from edgestore.ring import RingBuilder
from hypothesis import strategies as st

SALT = bytes(range(16))


@dataclass(frozen=True)
class DevSpec:
    """One device of a generated layout."""

    region: int
    zone: int
    node: int
    weight: float

    @property
    def ip(self) -> str:
        return f"10.{self.region}.{self.zone}.{self.node + 1}"


def add_devices(builder: RingBuilder, specs: list[DevSpec]) -> list[int]:
    """Add the devices; several devices on one node get distinct names."""
    ids = []
    per_node: Counter[str] = Counter()
    for spec in specs:
        per_node[spec.ip] += 1
        ids.append(builder.add_device(region=spec.region, zone=spec.zone, ip=spec.ip,
                                      port=6200, device=f"d{per_node[spec.ip]}",
                                      weight=spec.weight))
    return ids


def make_builder(specs: list[DevSpec], part_power: int = 6, replicas: int = 3,
                 min_part_hours: int = 1) -> RingBuilder:
    builder = RingBuilder(part_power, replicas, min_part_hours, salt=SALT)
    add_devices(builder, specs)
    return builder


def grid(regions: int, zones: int, nodes: int, devs: int,
         weight: float = 1.0) -> list[DevSpec]:
    """A regular layout: every region has `zones` zones of `nodes` nodes of `devs` devices."""
    return [DevSpec(r, z, n, weight) for r in range(regions) for z in range(zones)
            for n in range(nodes) for _ in range(devs)]


WEIGHTS = st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.0])


@st.composite
def layouts(draw: st.DrawFn, max_devices: int = 20, regions: int = 2, zones: int = 4,
            nodes: int = 3, weights: st.SearchStrategy[float] = WEIGHTS) -> list[DevSpec]:
    """Random devices over a few regions, zones and nodes (at least one device)."""
    count = draw(st.integers(min_value=1, max_value=max_devices))
    return [DevSpec(draw(st.integers(0, regions - 1)), draw(st.integers(0, zones - 1)),
                    draw(st.integers(0, nodes - 1)), draw(weights)) for _ in range(count)]


def moved_parts(before: list[list[int]], after: list[list[int]]) -> set[int]:
    """Partitions with at least one replica on a different device."""
    return {part for part, (old, new) in enumerate(zip(before, after, strict=True)) if old != new}


def moved_replicas(before: list[list[int]], after: list[list[int]]) -> int:
    """Replica slots that changed device."""
    return sum(a != b for old, new in zip(before, after, strict=True) for a, b in zip(old, new, strict=True))


def min_moves(parts_before: dict[int, int], targets: dict[int, float]) -> float:
    """The replicas that must move to reach the targets if every move went from a device
    over its target straight to one under it: the sum of the shortfalls."""
    return sum(max(0.0, target - parts_before.get(dev_id, 0))
               for dev_id, target in targets.items())
