"""A production-sized ring: part power 16, 3 replicas, 300 devices.

No timing is asserted (see STYLE.md: no timed assertions); the rebalance is expected to
take seconds, and `pytest --durations` shows it.
"""

from __future__ import annotations

import random

import pytest
from edgestore.ring import Ring, RingBuilder
from edgestore.ring.io import builder_from_bytes, builder_to_bytes
from ring_helpers import SALT, min_moves


def _check(builder: RingBuilder) -> None:
    builder.validate()
    zone_of = {dev.id: dev.zone for dev in builder.devices}
    for part_devs in zip(*builder.rows(), strict=True):
        assert len({zone_of[d] for d in part_devs}) == 3
    targets = builder.target_parts()
    counts = builder.parts_by_device()
    for dev_id, target in targets.items():
        assert abs(counts[dev_id] - target) < 2, (dev_id, counts[dev_id], target)


@pytest.fixture(scope="module")
def big() -> RingBuilder:
    builder = RingBuilder(part_power=16, replicas=3, min_part_hours=1, salt=SALT)
    rnd = random.Random(300)
    for zone in range(10):
        for node in range(10):
            for disk in range(3):
                builder.add_device(region=1, zone=zone, ip=f"10.1.{zone}.{node + 1}",
                                   port=6200, device=f"sd{'abc'[disk]}",
                                   weight=rnd.choice([1.0, 2.0, 4.0]))
    result = builder.rebalance(seed=1, now=0)
    assert result.moved == 3 * 2**16
    return builder


def test_initial_rebalance_is_valid_dispersed_and_balanced(big: RingBuilder) -> None:
    _check(big)
    # Ten equal-sized zones of mixed disks: weight, not dispersion, decides.
    assert big.balance < 1.0


def test_adding_and_removing_devices_moves_about_the_minimum(big: RingBuilder) -> None:
    before = big.parts_by_device()
    for zone in range(5):
        big.add_device(region=1, zone=zone, ip=f"10.1.{zone}.100", port=6200, device="sdn",
                       weight=2.0)
    for dev_id in (0, 100, 200):
        big.remove_device(dev_id)
    targets = big.target_parts()
    ideal = min_moves(before, targets)
    result = big.rebalance(seed=2, now=7200)
    _check(big)
    # Each device may stop a replica short of (or beyond) its target.
    assert ideal - len(targets) <= result.moved <= ideal + len(targets)
    assert big.balance < 1.0
    ring = Ring(builder_from_bytes(builder_to_bytes(big)).to_ringdata())
    assert ring.primaries(12345) == Ring(big.to_ringdata()).primaries(12345)
