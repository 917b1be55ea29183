"""The placement plan: how many replicas of a partition each failure domain should hold.

The plan is a tree of tiers (root > region > zone > node > device) over the devices with a
weight above zero. For every tier it fixes two numbers, top down:

* `maxrep`, the most replicas of one partition the tier may hold. Replicas are spread as
  widely as the tier's children allow (dispersion comes first): with n replicas to place
  under a parent, each child may take at most L, the smallest level at which the children
  can hold all n (a child never holds more replicas than it has devices). Three zones and
  three replicas give L = 1: one replica per zone, whatever the weights.
* `target`, the replicas of a partition the tier should hold on average: the parent's
  target shared out in proportion to weight ("water-filling"), but never above L. A tier
  pinned at L is overweight relative to its weight share; that is the price of dispersion,
  and `balance` reports it.

A device's target times the number of partitions is the partition-replica count the
rebalance aims for. This is the dispersion-first policy of Swift's `wanted` replicas (an
unlimited overload), computed by one water-fill per tier instead of Swift's loops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edgestore.ring.devices import Device

__all__ = ["EPSILON", "LEVELS", "Plan", "build_plan", "spread"]

EPSILON = 1e-9
# Levels below the root: region, zone, node, device.
LEVELS = 4


def spread(replicas: float, weights: Sequence[float],
           caps: Sequence[int]) -> tuple[list[float], list[int]]:
    """Share `replicas` among children with these weights and capacities.

    Returns (targets, maxreps): the average replicas per partition for each child and the
    most any one partition may put on it. Each partition holds floor(replicas) or
    ceil(replicas) replicas here; spread as evenly as the capacities allow, a child then
    holds between `low` and `high` of them, and the targets are the weight shares clamped
    to that range. Capacities must add up to at least ceil(replicas); weights must be > 0.
    """
    count = len(weights)
    if count == 0:
        return [], []
    needed = math.ceil(replicas - EPSILON)
    # The lowest per-child limit at which the children can hold `needed` replicas.
    limit = max(1, math.ceil(needed / count))
    while sum(min(cap, limit) for cap in caps) < needed:
        limit += 1
    high = [min(cap, limit) for cap in caps]
    floor_share = math.floor(replicas + EPSILON) // count
    low = [min(cap, floor_share) for cap in caps]
    targets = _bounded_shares(float(replicas), weights, low, high)
    maxreps = [min(high[i], math.ceil(targets[i] - EPSILON)) for i in range(count)]
    return targets, maxreps


def _bounded_shares(total: float, weights: Sequence[float], low: Sequence[int],
                    high: Sequence[int]) -> list[float]:
    """Shares proportional to weight, each clamped to [low, high], adding up to `total`.

    The classic fixing loop: compute the proportional shares of the children not yet
    fixed; if some break a bound, fix the side that breaks by more at that bound (fixing it
    can only push the others further the same way, so it is final) and repeat.
    """
    count = len(weights)
    shares = [0.0] * count
    free = list(range(count))
    remaining = total
    while free:
        scale = remaining / sum(weights[i] for i in free)
        over = [i for i in free if scale * weights[i] > high[i] + EPSILON]
        under = [i for i in free if scale * weights[i] < low[i] - EPSILON]
        if not over and not under:
            for i in free:
                shares[i] = scale * weights[i]
            break
        excess = sum(scale * weights[i] - high[i] for i in over)
        deficit = sum(low[i] - scale * weights[i] for i in under)
        fixed = over if excess >= deficit else under
        bound = high if excess >= deficit else low
        for i in fixed:
            shares[i] = float(bound[i])
            remaining -= bound[i]
        fixed_set = set(fixed)
        free = [i for i in free if i not in fixed_set]
    return shares


@dataclass(frozen=True, eq=False)
class Plan:
    """The tier tree of the weighted devices with each tier's target and dispersion bound.

    Tier nodes are numbered 0 (the root) upwards in sorted tier order; lists are indexed by
    node number. `paths[dev_id]` gives a device's (region, zone, node, device) node numbers.
    """

    replicas: int
    keys: tuple[tuple[object, ...], ...]
    level: tuple[int, ...]
    parent: tuple[int, ...]
    children: tuple[tuple[int, ...], ...]
    target: tuple[float, ...]
    maxrep: tuple[int, ...]
    cap: tuple[int, ...]
    node_dev: tuple[int, ...]
    paths: dict[int, tuple[int, int, int, int]]

    @property
    def device_nodes(self) -> tuple[int, ...]:
        """Leaf node numbers, one per weighted device."""
        return tuple(path[3] for path in self.paths.values())

    def device_target(self, dev_id: int) -> float:
        """Replicas of an average partition the device should hold (0 if not in the plan)."""
        path = self.paths.get(dev_id)
        return self.target[path[3]] if path else 0.0

    def level_min_maxrep(self, level: int) -> int:
        """The smallest dispersion bound among the tiers at `level` (1 region .. 4 device)."""
        return min((m for m, lvl in zip(self.maxrep, self.level, strict=True) if lvl == level), default=0)


def build_plan(devices: Sequence[Device], replicas: int) -> Plan:
    """The plan for these devices (all with weight > 0) and this many replicas."""
    devs = sorted(devices, key=lambda d: (d.region, d.zone, d.ip, d.id))
    if not devs:
        raise ValueError("a plan needs at least one device with weight > 0")
    # With fewer devices than replicas a device must hold several replicas of a partition.
    dev_cap = 1 if len(devs) >= replicas else math.ceil(replicas / len(devs))

    keys: list[tuple[object, ...]] = [()]
    level = [0]
    parent = [-1]
    index: dict[tuple[object, ...], int] = {(): 0}
    paths: dict[int, tuple[int, int, int, int]] = {}
    node_dev = [-1]
    for dev in devs:
        tiers: list[tuple[object, ...]] = [
            (dev.region,), (dev.region, dev.zone), (dev.region, dev.zone, dev.ip),
            (dev.region, dev.zone, dev.ip, dev.id),
        ]
        path = []
        up = 0
        for depth, key in enumerate(tiers, start=1):
            node = index.get(key)
            if node is None:
                node = len(keys)
                index[key] = node
                keys.append(key)
                level.append(depth)
                parent.append(up)
                node_dev.append(dev.id if depth == LEVELS else -1)
            path.append(node)
            up = node
        paths[dev.id] = (path[0], path[1], path[2], path[3])

    size = len(keys)
    children: list[list[int]] = [[] for _ in range(size)]
    for node in range(1, size):
        children[parent[node]].append(node)
    weight = [0.0] * size
    cap = [0] * size
    for dev in devs:
        leaf = paths[dev.id][3]
        weight[leaf] = dev.weight
        cap[leaf] = dev_cap
    for node in range(size - 1, 0, -1):  # children are numbered after their parents
        weight[parent[node]] += weight[node]
        cap[parent[node]] += cap[node]

    target = [0.0] * size
    maxrep = [0] * size
    target[0] = float(replicas)
    maxrep[0] = replicas
    for node in range(size):  # parents come first, so their target is known
        kids = children[node]
        if not kids:
            continue
        kid_targets, kid_maxreps = spread(
            target[node], [weight[k] for k in kids], [cap[k] for k in kids])
        for kid, kid_target, kid_maxrep in zip(kids, kid_targets, kid_maxreps, strict=True):
            target[kid] = kid_target
            maxrep[kid] = kid_maxrep

    return Plan(
        replicas=replicas,
        keys=tuple(keys),
        level=tuple(level),
        parent=tuple(parent),
        children=tuple(tuple(kids) for kids in children),
        target=tuple(target),
        maxrep=tuple(maxrep),
        cap=tuple(cap),
        node_dev=tuple(node_dev),
        paths=paths,
    )
