"""The rebalance algorithm, in named phases over compact arrays.

`RingBuilder.rebalance` hands a `Rebalancer` copies of its assignment rows and last-moved
times and a `Plan` (targets and dispersion bounds per tier); the phases then run in order:

1. `gather_forced`: replicas on devices that are not in the plan (removed, weight 0,
   unknown) or not assigned at all. These move whatever min_part_hours says.
2. `gather_for_dispersion`: in partitions that may move, replicas beyond a tier's bound
   (`Plan.maxrep`) or bunched in one child of a tier while a sibling could take one,
   taken from the most overloaded device.
3. `reassign`: every gathered replica goes to the device `choose` picks: walking down the
   tiers, dispersion first (a child the partition does not use yet, else the least used
   one under its bound), then the child that wants the most partition-replicas.
4. `balance`: while a device is over its target and a movable partition of it can go to a
   device under its target (without spreading the partition less widely), move one
   replica, always from the most overloaded device. Each move strictly lowers the sum of
   squared deviations, so the loop ends; taking from the most overloaded device first
   keeps the number of moves near the minimum. A replica placed by this same rebalance
   may be placed again (that is no extra move), whatever min_part_hours says.

"Wanted" is target minus assigned partition-replicas, kept for every tier node; a seeded
jitter below one breaks ties, so equal devices are picked in a seeded random order instead
of round-robin (round-robin would make each device share partitions with only a few
others, and a failed device would then be rebuilt from only those few).
No per-partition Python objects: rows are `array('I')`, last-moved times `array('d')`.
"""

from __future__ import annotations

import heapq
import random
from array import array
from collections import Counter
from collections.abc import Sequence

from edgestore.ring.errors import RebalanceError
from edgestore.ring.plan import EPSILON, LEVELS, Plan
from edgestore.ring.ringdata import NO_DEVICE

__all__ = ["Rebalancer"]

_JITTER = 0.5  # below 1, so ties are broken but a whole partition of difference never is


class Rebalancer:
    """One rebalance over mutable copies of the builder's arrays (see module docstring)."""

    def __init__(
        self,
        rows: Sequence[array[int]],
        last_moved: array[float],
        plan: Plan,
        *,
        min_part_seconds: float,
        now: float,
        rng: random.Random,
    ) -> None:
        self.rows = list(rows)
        self.replicas = len(self.rows)
        self.parts = len(last_moved)
        self.last_moved = last_moved
        self.plan = plan
        self.min_part_seconds = min_part_seconds
        self.now = now
        self.rng = rng
        self.paths = plan.paths
        size = len(plan.keys)
        self.wanted = [0.0] * size
        self.score = [0.0] * size
        # Slots (part * replicas + replica) placed by this rebalance. Placing one again
        # costs no extra move, so min_part_hours does not hold it.
        self.fresh: set[int] = set()

    # -- bookkeeping -------------------------------------------------------------------

    def movable(self, part: int) -> bool:
        """Whether min_part_hours lets `part` move now (never moved counts as long ago)."""
        return self.now - self.last_moved[part] >= self.min_part_seconds

    def _count_wanted(self) -> None:
        """wanted = target x partitions - assigned, for every tier node."""
        plan = self.plan
        assigned = [0] * len(plan.keys)
        counts: Counter[int] = Counter()
        for row in self.rows:
            counts.update(row)
        for dev_id, count in counts.items():
            path = self.paths.get(dev_id)
            if path is not None:
                for node in path:
                    assigned[node] += count
        rnd = self.rng.random
        for node, target in enumerate(plan.target):
            self.wanted[node] = target * self.parts - assigned[node]
            self.score[node] = self.wanted[node] + rnd() * _JITTER

    def _add(self, dev_id: int, delta: int) -> None:
        """Count `delta` more replicas on a device and its tiers."""
        wanted, score, rnd = self.wanted, self.score, self.rng.random
        for node in self.paths[dev_id]:
            wanted[node] -= delta
            score[node] = wanted[node] + rnd() * _JITTER

    def _device_wanted(self, dev_id: int) -> float:
        return self.wanted[self.paths[dev_id][3]]

    # -- choosing a device -------------------------------------------------------------

    def choose(self, others: Sequence[int]) -> int:
        """The best device for one more replica of a partition whose other replicas are on
        `others`. Walking down the tiers, dispersion decides first: a child the partition
        does not use yet, else one of the least used children still under its bound
        (`maxrep`; if the partition already breaks the bounds, under its capacity). Among
        those, the child that wants the most partition-replicas wins."""
        plan = self.plan
        children, maxrep, score = plan.children, plan.maxrep, self.score
        by_score = score.__getitem__
        paths = [self.paths[d] for d in others]
        node = 0
        for level in range(LEVELS):
            kids = children[node]
            if len(kids) == 1:
                node = kids[0]
            elif paths:
                used = [path[level] for path in paths]
                cands = [k for k in kids if k not in used and maxrep[k]]
                if not cands:
                    cands = self._least_used(kids, used)
                node = max(cands, key=by_score)
            else:
                node = max(kids, key=by_score)
            if paths:
                paths = [path for path in paths if path[level] == node]
        return plan.node_dev[node]

    def _least_used(self, kids: Sequence[int], used: list[int]) -> list[int]:
        """Among children that all hold this partition already, the least used ones that
        may take one more (under `maxrep`, or at worst under their capacity)."""
        maxrep, cap = self.plan.maxrep, self.plan.cap
        counts = {k: used.count(k) for k in kids}
        room = [k for k in kids if counts[k] < maxrep[k]]
        if not room:
            room = [k for k in kids if counts[k] < cap[k]]
            if not room:
                raise RebalanceError("no device can take another replica")
        least = min(counts[k] for k in room)
        return [k for k in room if counts[k] == least]

    # -- phase 1: replicas that must move ----------------------------------------------

    def gather_forced(self) -> list[int]:
        """Unassign replicas on devices outside the plan; return their slots (part*R+r)."""
        keep = self.paths
        replicas = self.replicas
        slots = []
        for replica, row in enumerate(self.rows):
            bad = {dev for dev in set(row) if dev not in keep}
            if not bad:
                continue
            for part, dev in enumerate(row):
                if dev in bad:
                    row[part] = NO_DEVICE
                    slots.append(part * replicas + replica)
        return slots

    # -- phase 2: replicas beyond a tier's dispersion bound ----------------------------

    def gather_for_dispersion(self) -> list[int]:
        """Unassign replicas of movable partitions that are spread less widely than the
        plan allows: beyond a tier's bound, or bunched in one child of a tier while a
        sibling that could take one holds two fewer."""
        plan = self.plan
        replicas = self.replicas
        levels = [lvl for lvl in range(LEVELS) if plan.level_min_maxrep(lvl + 1) < replicas]
        if not levels:
            return []
        # Levels where every bound is at least 1: distinct tiers there cannot break it.
        loose = {lvl for lvl in levels if plan.level_min_maxrep(lvl + 1) >= 1}
        paths = self.paths
        slots = []
        rows = self.rows
        for part, devs in enumerate(zip(*rows, strict=True)):
            if NO_DEVICE in devs:
                present = [(r, d) for r, d in enumerate(devs) if d != NO_DEVICE]
            else:
                present = list(enumerate(devs))
            if len(present) < 2:
                continue
            for level in levels:
                tiers = [paths[d][level] for _, d in present]
                if level in loose and len(set(tiers)) == len(tiers):
                    continue
                excess = self._excess(tiers)
                if not excess:
                    continue
                if not self.movable(part):
                    break
                for tier, count in sorted(excess.items()):
                    inside = sorted((self._device_wanted(d), r, d) for r, d in present
                                    if paths[d][level] == tier)
                    for _, replica, dev in inside[:count]:
                        rows[replica][part] = NO_DEVICE
                        self._add(dev, -1)
                        slots.append(part * replicas + replica)
                present = [(r, d) for r, d in present if rows[r][part] != NO_DEVICE]
        return slots

    def _excess(self, tiers: list[int]) -> dict[int, int]:
        """How many of one partition's replicas to take out of each of these tiers (all at
        one level) so none is over its bound and siblings differ by at most one."""
        plan = self.plan
        maxrep, parent, children = plan.maxrep, plan.parent, plan.children
        counts = Counter(tiers)
        excess: dict[int, int] = {}
        for tier, count in counts.items():
            if count > maxrep[tier]:
                excess[tier] = count - maxrep[tier]
                counts[tier] = maxrep[tier]
        for up in sorted({parent[tier] for tier in counts}):
            kids = [k for k in children[up] if maxrep[k]]
            while True:
                room = [k for k in kids if counts[k] < maxrep[k]]
                if not room:
                    break
                least = min(counts[k] for k in room)
                most = max(kids, key=lambda k: (counts[k], -k))
                if counts[most] - least < 2:
                    break
                counts[most] -= 1
                excess[most] = excess.get(most, 0) + 1
        return excess

    # -- phase 3: place gathered replicas ----------------------------------------------

    def reassign(self, slots: list[int]) -> None:
        """Give every unassigned slot the best device, partitions in seeded random order."""
        replicas = self.replicas
        by_part: dict[int, list[int]] = {}
        for slot in sorted(slots):
            by_part.setdefault(slot // replicas, []).append(slot % replicas)
        order = list(by_part)
        self.rng.shuffle(order)
        rows, now, last_moved = self.rows, self.now, self.last_moved
        for part in order:
            for replica in by_part[part]:
                others = [d for d in (row[part] for row in rows) if d != NO_DEVICE]
                dev = self.choose(others)
                rows[replica][part] = dev
                self._add(dev, 1)
                self.fresh.add(part * replicas + replica)
            last_moved[part] = now

    # -- phase 4: even out device loads ------------------------------------------------

    def balance(self, max_rounds: int = 4) -> int:
        """Move replicas from overloaded to underloaded devices; return how many moved.

        A round gives each overloaded device one pass over its partitions. A later round
        can succeed where an earlier one failed: once device B has given a partition to
        C, A can give B one that could go nowhere else (a chain A -> B -> C)."""
        moved = 0
        for _ in range(max_rounds):
            moved_now = self._balance_round()
            moved += moved_now
            if not moved_now:
                break
        return moved

    def _balance_round(self) -> int:
        plan, paths, rows = self.plan, self.paths, self.rows
        replicas = self.replicas
        dev_nodes = plan.device_nodes
        wanted = self.wanted
        slots_of: dict[int, list[int]] = {}
        over = {plan.node_dev[n] for n in dev_nodes if wanted[n] < -EPSILON}
        if not over:
            return 0
        for replica, row in enumerate(rows):
            for part, dev in enumerate(row):
                if dev in over:
                    slots_of.setdefault(dev, []).append(part * replicas + replica)
        shuffled: set[int] = set()
        heap = [(wanted[paths[d][3]], d) for d in sorted(slots_of)]
        heapq.heapify(heap)
        recipients = self._recipients()
        moved = 0
        while heap and recipients:
            # Each donor has one entry, pushed back after each of its own moves, and a
            # donor (over its target) is never a recipient, so no entry is ever stale.
            dev_wanted, donor = heapq.heappop(heap)
            best = self._device_wanted(recipients[0])
            if dev_wanted + 1 + EPSILON >= best or (
                    dev_wanted > EPSILON - 1 and best < 1 - EPSILON):
                break  # even the most overloaded device has no worthwhile move
            slots = slots_of[donor]
            if donor not in shuffled:
                self.rng.shuffle(slots)
                slots.sort(key=self.fresh.__contains__)  # fresh ones last: popped first
                shuffled.add(donor)
            while slots:
                slot = slots.pop()
                part, replica = divmod(slot, replicas)
                if rows[replica][part] != donor or not (
                        slot in self.fresh or self.movable(part)):
                    continue
                if self._try_move(part, replica, donor, recipients):
                    moved += 1
                    recipients = self._recipients()
                    break
            else:
                continue  # no movable partition of this donor can go anywhere better
            new_wanted = wanted[paths[donor][3]]
            if new_wanted < -EPSILON:
                heapq.heappush(heap, (new_wanted, donor))
        return moved

    def _recipients(self) -> list[int]:
        """Devices under their target, the most wanting first (seeded ties)."""
        plan, wanted, score = self.plan, self.wanted, self.score
        nodes = [n for n in plan.device_nodes if wanted[n] > EPSILON]
        nodes.sort(key=lambda n: (-wanted[n], -score[n]))
        return [plan.node_dev[n] for n in nodes]

    def _try_move(self, part: int, replica: int, donor: int, recipients: list[int]) -> bool:
        """Move one replica of `part` off `donor` if that is worth a data move: to the most
        wanting device that keeps the partition as dispersed as the plan asks, provided it
        wants more than the donor would after giving the replica up, and one of the two is
        a whole partition-replica or more away from its target (two devices both within
        one of their targets are as balanced as integers allow)."""
        rows = self.rows
        donor_after = self._device_wanted(donor) + 1
        paths = [self.paths[row[part]] for r, row in enumerate(rows) if r != replica]
        for dev in recipients:
            dev_wanted = self._device_wanted(dev)
            if dev_wanted <= donor_after + EPSILON:
                return False  # recipients are sorted: nobody further on is better
            if donor_after > EPSILON and dev_wanted < 1 - EPSILON:
                return False
            if self.allowed(dev, paths):
                rows[replica][part] = dev
                self._add(donor, -1)
                self._add(dev, 1)
                self.last_moved[part] = self.now
                self.fresh.add(part * self.replicas + replica)
                return True
        return False

    def allowed(self, dev: int, paths: list[tuple[int, int, int, int]]) -> bool:
        """Whether `choose` could pick `dev` for a partition whose other replicas are on
        devices with these tier paths: at every level, the device's tier is one the
        partition does not use yet, or (if none is left) one of the least used."""
        plan = self.plan
        children, maxrep = plan.children, plan.maxrep
        target = self.paths[dev]
        node = 0
        for level in range(LEVELS):
            tier = target[level]
            if paths:
                kids = children[node]
                used = [path[level] for path in paths]
                if tier in used or not maxrep[tier]:
                    if any(k not in used and maxrep[k] for k in kids):
                        return False
                    try:
                        if tier not in self._least_used(kids, used):
                            return False
                    except RebalanceError:
                        return False
                paths = [path for path in paths if path[level] == tier]
            node = tier
        return True

    # -- all phases ----------------------------------------------------------------------

    def run(self) -> None:
        """Run the phases in order; the arrays passed in hold the result."""
        forced = self.gather_forced()
        self._count_wanted()
        dispersion = self.gather_for_dispersion()
        self.reassign(forced + dispersion)
        self.balance()
