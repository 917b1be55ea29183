"""Hypothesis properties of rebalance and placement (small rings: part power 4..8)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter

from edgestore.ring import Ring, RingBuilder
from edgestore.ring.io import builder_from_bytes, builder_to_bytes
from edgestore.ring.plan import spread
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ring_helpers import (
    DevSpec,
    grid,
    layouts,
    make_builder,
    min_moves,
    moved_parts,
    moved_replicas,
)

# RING_PROPERTY_EXAMPLES=1000 for a deeper search than the default quick run.
PROPS = settings(max_examples=int(os.environ.get("RING_PROPERTY_EXAMPLES", "40")),
                 deadline=None, suppress_health_check=[HealthCheck.too_slow])
PART_POWERS = st.integers(min_value=4, max_value=8)
REPLICAS = st.integers(min_value=1, max_value=4)
SEEDS = st.integers(min_value=0, max_value=2**32)


def weighted_ids(builder: RingBuilder) -> set[int]:
    return {dev.id for dev in builder.devices if dev.weight > 0}


# -- invariants and dispersion ---------------------------------------------------------------


@PROPS
@given(layouts(), PART_POWERS, REPLICAS, SEEDS)
def test_rebalance_keeps_invariants(specs: list[DevSpec], part_power: int, replicas: int,
                                    seed: int) -> None:
    builder = make_builder(specs, part_power, replicas)
    result = builder.rebalance(seed=seed, now=0)
    builder.validate()
    assert result.moved == builder.partitions * replicas
    devs = {dev.id: dev for dev in builder.devices}
    for part_devs in builder.assignments():
        assert len(part_devs) == replicas
        if len(devs) >= replicas:
            assert len(set(part_devs)) == replicas
        else:  # as evenly as possible over the few devices
            counts = Counter(part_devs)
            assert set(counts) == set(devs)
            assert max(counts.values()) - min(counts.values()) <= 1


@PROPS
@given(layouts(regions=3, zones=2), PART_POWERS, REPLICAS, SEEDS)
def test_regions_spread_as_widely_as_possible(specs: list[DevSpec], part_power: int,
                                              replicas: int, seed: int) -> None:
    builder = make_builder(specs, part_power, replicas)
    builder.rebalance(seed=seed, now=0)
    regions = {dev.region for dev in builder.devices}
    region_of = {dev.id: dev.region for dev in builder.devices}
    for part_devs in builder.assignments():
        assert len({region_of[d] for d in part_devs}) == min(replicas, len(regions))


@PROPS
@given(layouts(regions=1, zones=6), PART_POWERS, REPLICAS, SEEDS)
def test_zones_spread_as_widely_as_possible(specs: list[DevSpec], part_power: int,
                                            replicas: int, seed: int) -> None:
    builder = make_builder(specs, part_power, replicas)
    builder.rebalance(seed=seed, now=0)
    zones = {dev.zone for dev in builder.devices}
    zone_of = {dev.id: dev.zone for dev in builder.devices}
    for part_devs in builder.assignments():
        used = Counter(zone_of[d] for d in part_devs)
        assert len(used) == min(replicas, len(zones))
        if len(zones) >= replicas:
            assert max(used.values()) == 1


@PROPS
@given(layouts(regions=1, zones=1, nodes=5), PART_POWERS, REPLICAS, SEEDS)
def test_nodes_spread_as_widely_as_possible(specs: list[DevSpec], part_power: int,
                                            replicas: int, seed: int) -> None:
    builder = make_builder(specs, part_power, replicas)
    builder.rebalance(seed=seed, now=0)
    nodes = {dev.ip for dev in builder.devices}
    node_of = {dev.id: dev.ip for dev in builder.devices}
    for part_devs in builder.assignments():
        assert len({node_of[d] for d in part_devs}) == min(replicas, len(nodes))


# -- balance --------------------------------------------------------------------------------


@PROPS
@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 3), st.integers(1, 2),
       PART_POWERS, st.integers(1, 3), SEEDS)
def test_equal_weights_match_naive_oracle(regions: int, zones: int, nodes: int, devs: int,
                                          part_power: int, replicas: int, seed: int) -> None:
    """Symmetric layout, equal weights: nothing constrains, so every device holds the
    exact share parts x replicas / devices, rounded either way."""
    specs = grid(regions, zones, nodes, devs)
    builder = make_builder(specs, part_power, replicas)
    result = builder.rebalance(seed=seed, now=0)
    share = builder.partitions * replicas / len(specs)
    for count in builder.parts_by_device().values():
        assert math.floor(share) <= count <= math.ceil(share)
    assert result.balance <= 100.0 / share + 1e-9


@PROPS
@given(layouts(), PART_POWERS, REPLICAS, SEEDS)
def test_devices_reach_their_targets(specs: list[DevSpec], part_power: int, replicas: int,
                                     seed: int) -> None:
    """Whatever the weights, a first rebalance gives each device its dispersion-aware
    target (`target_parts`), up to rounding; where dispersion does not bind (the target is
    the weight share), that is the weight share."""
    builder = make_builder(specs, part_power, replicas)
    builder.rebalance(seed=seed, now=0)
    targets = builder.target_parts()
    counts = builder.parts_by_device()
    for dev_id, target in targets.items():
        assert abs(counts[dev_id] - target) < 2, (dev_id, counts[dev_id], target)
    assert sum(targets.values()) == builder.partitions * replicas or \
        math.isclose(sum(targets.values()), builder.partitions * replicas)


@PROPS
@given(st.floats(0.5, 12.0), st.lists(st.floats(0.01, 100.0), min_size=1, max_size=6),
       st.data())
def test_spread_matches_bisection_oracle(replicas: float, weights: list[float],
                                         data: st.DataObject) -> None:
    caps = data.draw(st.lists(st.integers(1, 6), min_size=len(weights),
                              max_size=len(weights)))
    assume(sum(caps) >= math.ceil(replicas - 1e-9))
    targets, maxreps = spread(replicas, weights, caps)
    assert math.isclose(sum(targets), replicas, rel_tol=1e-9)
    needed = math.ceil(replicas - 1e-9)
    limit = next(lim for lim in range(1, needed + 2)
                 if sum(min(c, lim) for c in caps) >= needed)
    high = [min(c, limit) for c in caps]
    low = [min(c, math.floor(replicas + 1e-9) // len(weights)) for c in caps]

    def total(scale: float) -> float:
        return sum(min(h, max(lo, scale * w)) for w, lo, h in zip(weights, low, high, strict=True))

    lo_s, hi_s = 0.0, 1.0
    while total(hi_s) < replicas:
        hi_s *= 2
    for _ in range(200):
        mid = (lo_s + hi_s) / 2
        lo_s, hi_s = (mid, hi_s) if total(mid) < replicas else (lo_s, mid)
    oracle = [min(h, max(lo, hi_s * w)) for w, lo, h in zip(weights, low, high, strict=True)]
    for got, want, bound in zip(targets, oracle, maxreps, strict=True):
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6)
        assert bound >= got - 1e-9


# -- movement --------------------------------------------------------------------------------

CHANGES = st.sampled_from(["add", "reweight", "remove"])


def unconstrained(builder: RingBuilder) -> bool:
    """Whether dispersion leaves weight alone: every zone's weight share stays well below
    one replica of each partition, so targets are plain weight shares and no partition is
    forced into a shape."""
    weights: dict[int, float] = {}
    for dev in builder.devices:
        weights[dev.zone] = weights.get(dev.zone, 0.0) + dev.weight
    total = sum(weights.values())
    return all(builder.replicas * weight / total <= 0.75 for weight in weights.values())


@st.composite
def zoned_layouts(draw: st.DrawFn, replicas: int) -> list[DevSpec]:
    """One region, more zones than replicas, 1-3 devices a zone, mixed weights."""
    zones = draw(st.integers(replicas + 2, 7))
    specs = []
    for zone in range(zones):
        for node in range(draw(st.integers(1, 3))):
            specs.append(DevSpec(0, zone, node, draw(st.sampled_from([1.0, 2.0, 3.0]))))
    return specs


@PROPS
@given(st.data(), st.integers(6, 8), st.integers(1, 3), CHANGES, SEEDS)
def test_one_change_moves_about_the_minimum(data: st.DataObject, part_power: int,
                                            replicas: int, change: str, seed: int) -> None:
    specs = data.draw(zoned_layouts(replicas))
    builder = make_builder(specs, part_power, replicas)
    assume(unconstrained(builder))
    builder.rebalance(seed=seed, now=0)
    before = builder.assignments()
    parts_before = builder.parts_by_device()
    target = data.draw(st.integers(0, len(specs) - 1))
    if change == "add":
        builder.add_device(region=0, zone=specs[target].zone, ip="10.99.99.99", port=1,
                           device="new", weight=data.draw(st.sampled_from([1.0, 2.0, 4.0])))
    elif change == "reweight":
        builder.set_weight(target, data.draw(st.sampled_from([0.5, 1.5, 4.0])))
    else:
        builder.remove_device(target)
    targets = builder.target_parts()
    # Where dispersion binds (a zone due more than one replica of every partition by
    # weight), partitions are forced into shapes and the minimum is not the simple sum
    # below; those layouts are covered by the other properties.
    assume(unconstrained(builder))
    result = builder.rebalance(seed=seed, now=10**6)
    builder.validate()
    assert result.moved == moved_replicas(before, builder.assignments())
    ideal = min_moves(parts_before, targets)
    if change == "remove":
        assert result.moved >= parts_before[target]
    counts = builder.parts_by_device()
    arrived = sum(max(0, counts[d] - parts_before.get(d, 0)) for d in counts)
    assert result.moved >= arrived
    # Each device may end a replica either side of its target (one move per device), and
    # a partition that already holds a short device cannot give it another, so in these
    # small rings some replicas take a detour (measured: up to ~15% more than the sum of
    # shortfalls; at part power 16 and 300 devices it is within 1%, see test_ring_scale).
    assert result.moved <= ideal * 1.2 + len(targets) + 2, (result.moved, ideal)

    def deviation() -> float:
        now = builder.parts_by_device()
        return sum(abs(now.get(d, 0) - want) for d, want in targets.items())

    # One rebalance moves at most one replica of a partition (min_part_hours), which may
    # leave a small ring short of its targets, but never worse than before; a few more
    # rebalances, min_part_hours apart, reach them.
    assert deviation() <= sum(abs(parts_before.get(d, 0) - want)
                              for d, want in targets.items())
    for hours in range(1, 4):
        builder.rebalance(seed=seed, now=10**6 + hours * 3600)
    counts = builder.parts_by_device()
    for dev_id, want in targets.items():
        assert abs(counts.get(dev_id, 0) - want) <= 2, (dev_id, counts, targets)


@PROPS
@given(st.data(), st.integers(5, 7), st.integers(2, 3), CHANGES, CHANGES, SEEDS)
def test_no_partition_moves_twice_within_min_part_hours(
        data: st.DataObject, part_power: int, replicas: int, first: str, second: str,
        seed: int) -> None:
    specs = data.draw(zoned_layouts(replicas))
    builder = make_builder(specs, part_power, replicas, min_part_hours=1)
    builder.rebalance(seed=seed, now=0)

    def apply(change: str) -> None:
        live = [dev.id for dev in builder.devices if dev.weight > 0]
        victim = data.draw(st.sampled_from(live))
        if change == "add":
            builder.add_device(region=0, zone=0, ip=f"10.99.0.{builder.next_dev_id}",
                               port=1, device="new", weight=3.0)
        elif change == "reweight":
            builder.set_weight(victim, data.draw(st.sampled_from([0.0, 0.5, 4.0])))
        elif len(live) > replicas + 1:
            builder.remove_device(victim)

    apply(first)
    start = 10**6
    before = builder.assignments()
    builder.rebalance(seed=seed, now=start)
    first_moved = moved_parts(before, builder.assignments())
    apply(second)
    draining = {dev.id for dev in builder.devices if dev.weight == 0}
    forced = {part for part, devs in enumerate(builder.assignments())
              if draining.intersection(devs)}
    before = builder.assignments()
    builder.rebalance(seed=seed + 1, now=start + 3599.0)
    builder.validate()
    second_moved = moved_parts(before, builder.assignments())
    assert (second_moved & first_moved) <= forced


# -- handoffs ---------------------------------------------------------------------------------


@PROPS
@given(layouts(regions=2, zones=3), PART_POWERS, REPLICAS, SEEDS)
def test_handoffs(specs: list[DevSpec], part_power: int, replicas: int, seed: int) -> None:
    builder = make_builder(specs, part_power, replicas)
    builder.rebalance(seed=seed, now=0)
    if len(specs) > 1:
        builder.set_weight(0, 0.0)  # a zero-weight device is never a handoff
    data = builder.to_ringdata()
    ring, twin = Ring(data), Ring(builder_from_bytes(builder_to_bytes(builder)).to_ringdata())
    weighted = {dev.id for dev in ring.devices if dev.weight > 0}
    all_regions = {dev.region for dev in ring.devices if dev.weight > 0}
    all_zones = {(dev.region, dev.zone) for dev in ring.devices if dev.weight > 0}
    for part in range(ring.partitions):
        primaries = ring.primaries(part)
        handoffs = list(ring.handoffs(part))
        assert handoffs == list(twin.handoffs(part))
        ids = [dev.id for dev in handoffs]
        assert len(ids) == len(set(ids))
        assert set(ids).isdisjoint(dev.id for dev in primaries)
        assert set(ids) == weighted - {dev.id for dev in primaries}
        regions = {dev.region for dev in primaries}
        fresh = [dev.region for dev in handoffs[:len(all_regions - regions)]]
        assert set(fresh) == all_regions - regions
        zones = {(dev.region, dev.zone) for dev in primaries}
        fresh_zones = [(dev.region, dev.zone) for dev in handoffs[:len(all_zones - zones)]]
        assert set(fresh_zones) == all_zones - zones


# -- files and determinism ---------------------------------------------------------------------


@PROPS
@given(layouts(), PART_POWERS, REPLICAS, SEEDS, st.booleans())
def test_save_load_is_byte_identical(specs: list[DevSpec], part_power: int, replicas: int,
                                     seed: int, change: bool) -> None:
    builder = make_builder(specs, part_power, replicas)
    builder.rebalance(seed=seed, now=12.5)
    if change:
        builder.remove_device(0)
        builder.set_min_part_hours(7)
    data = builder_to_bytes(builder)
    loaded = builder_from_bytes(data)
    assert builder_to_bytes(loaded) == data
    assert loaded.assignments() == builder.assignments()


@PROPS
@given(layouts(), PART_POWERS, REPLICAS, SEEDS)
def test_seeded_rebalance_is_deterministic(specs: list[DevSpec], part_power: int,
                                           replicas: int, seed: int) -> None:
    one, two = make_builder(specs, part_power, replicas), make_builder(specs, part_power, replicas)
    assert one.rebalance(seed=seed, now=5) == two.rebalance(seed=seed, now=5)
    assert builder_to_bytes(one) == builder_to_bytes(two)
    one.add_device(region=0, zone=0, ip="10.200.0.1", port=1, device="x", weight=2)
    two.add_device(region=0, zone=0, ip="10.200.0.1", port=1, device="x", weight=2)
    assert one.rebalance(seed=seed, now=10**5) == two.rebalance(seed=seed, now=10**5)
    assert one.assignments() == two.assignments()


_BUILD = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from ring_helpers import grid, make_builder
from edgestore.ring.io import builder_to_bytes
b = make_builder(grid(2, 3, 2, 2), part_power=8, replicas=3)
b.rebalance(seed=11, now=0)
b.remove_device(3)
b.rebalance(seed=12, now=10**5)
print(hashlib.sha256(builder_to_bytes(b)).hexdigest())
"""


def test_result_does_not_depend_on_hash_randomisation() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    digests = set()
    for hash_seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", _BUILD, here], env=env, check=True,
                             capture_output=True, text=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1

