"""Quorum reads and writes of records and blocks over the replicas the ring names.

Any node coordinates any request. Records go to every replica of their partition and
are acknowledged by a quorum; reads ask a quorum, return the newest version and repair
the stale replicas they saw. A block is never rewritten and its id carries its checksum,
so a block read needs only one replica whose bytes still match their name. A device of this node is called
directly; a peer's over the signed internal API.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, NamedTuple, TypeVar

from edgestore.clock import Clock
from edgestore.cluster.internal_api import MAX_BLOCK_BODY, Counted, split_page_with_counters
from edgestore.cluster.listing import CommonPrefix, Row, merge_pages
from edgestore.cluster.quorum import Answer, gather_quorum, quorum_size
from edgestore.cluster.ringstate import RingState, device_url
from edgestore.cluster.rpc import InternalClient, JsonBody
from edgestore.config import Timeouts
from edgestore.errors import BlockUnavailable, ClusterError, CorruptBlock, NoSuchBlock, PeerError, StoreError
from edgestore.ring import Device
from edgestore.store.blockid import (
    BlockBytes,
    covering_pieces,
    digests_size,
    is_pieced,
    piece_size,
    pieces_match,
    verify_async,
)
from edgestore.store.blocks import take_range
from edgestore.store.device import LocalDevice
from edgestore.store.meta import BlockRef
from edgestore.store.records import Record, block_path, newest, placement_path

__all__ = ["Coordinator", "CountersProbe", "Target"]

log = logging.getLogger(__name__)
# Rewrites of a write that lost to a newer version (each moves our clock past it first).
MAX_CLOCK_RETRIES = 3
# Items per replica per lean listing page (the internal API's cap).
MAX_LIST_PAGE = 10000
# Requests given up on while waiting for a peer, with no answer from it in between, that
# make it tried last like a peer that refuses connections. One is a hiccup (a busy SD
# card's fsync); three in a row, no answer meanwhile, is a peer that has stopped.
HANGS_TO_SUPPRESS = 3

T = TypeVar("T")
# A replica's version of a record before a write: (ts, node, live).
Prior = tuple[int, str, bool]


@dataclass(frozen=True)
class Target:
    """One replica: a ring device, and its local store when it is on this node."""
    part: int
    device: Device
    local: LocalDevice | None

    @property
    def url(self) -> str:
        return device_url(self.device)


@dataclass
class CountersProbe:
    """Asks the replicas of a listing's first page for a bucket's counters as well (a Swift
    container GET shows them in its headers): one request per replica instead of two.
    `found` is set from that quorum, (objects, bytes), if every replica in it gave them."""
    bucket: str   # the bucket's record name ("account/bucket")
    found: tuple[int, int] | None = None


class _Page(NamedTuple):
    """One replica's answer to a listing page: the JSON text, and the counters if asked
    and given (a peer older than the question does not give them)."""
    text: bytes
    has_counters: bool = False
    counted: Counted = None


def _newest_counters(counted: list[Counted]) -> tuple[int, int]:
    """(objects, bytes) of the replica that applied the newest change: (0, 0) if none has rows."""
    best = max((c for c in counted if c is not None), key=lambda c: (c[2], c[0], c[1]), default=None)
    return (best[0], best[1]) if best is not None else (0, 0)


class PeerHealth:
    """Peers that just refused a connection, or that hung on a few requests in a row, are
    tried last for a while (error limiting): a dead node costs each request nothing once
    it is known to be dead, and a frozen one (a Pi stuck on its SD card, a stopped
    process) costs a few requests their grace, not every request."""

    def __init__(self, suppress_s: float) -> None:
        self._until: dict[str, float] = {}
        self._hung: dict[str, int] = {}
        self._suppress_s = suppress_s

    def failed(self, url: str) -> None:
        self._until[url] = time.monotonic() + self._suppress_s

    def hung(self, url: str) -> None:
        """A request was given up on while still waiting for this peer."""
        count = self._hung.get(url, 0) + 1
        if count >= HANGS_TO_SUPPRESS:
            self._hung.pop(url, None)
            self.failed(url)
        else:
            self._hung[url] = count

    def ok(self, url: str) -> None:
        self._until.pop(url, None)
        self._hung.pop(url, None)

    def suppressed(self, url: str) -> bool:
        until = self._until.get(url)
        return until is not None and until > time.monotonic()


class _Transfer:
    """One replica's block write: where to, when it started, and when its bytes last moved."""

    def __init__(self, target: Target | None = None) -> None:
        self.target = target
        self.started = time.monotonic()
        self.moved_at: float | None = None

    def moved(self) -> None:
        self.moved_at = time.monotonic()


class Coordinator:
    def __init__(self, ring_state: RingState, client: InternalClient,
                 local_devices: dict[tuple[str, int, str], LocalDevice], node_id: str,
                 timeouts: Timeouts, clock: Clock) -> None:
        self.clock = clock
        self.ring_state = ring_state
        self.client = client
        self.local_devices = local_devices
        self.node_id = node_id
        self.timeouts = timeouts
        self.health = PeerHealth(timeouts.peer_suppress_s)
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def replicas(self) -> int:
        return int(self.ring_state.ring.replicas)

    # -- placement -----------------------------------------------------------------

    def _target(self, part: int, device: Device) -> Target:
        return Target(part, device, self.local_devices.get((device.ip, device.port, device.device)))

    def candidates(self, path: str) -> Iterator[Target]:
        """Primaries, then handoffs; replicas on peers known to be down come last."""
        ring = self.ring_state.ring
        part = ring.partition_for_path(path)
        deferred: list[Target] = []
        for device in _chain(ring.primaries(part), ring.handoffs(part)):
            target = self._target(part, device)
            if target.local is None and self.health.suppressed(target.url):
                deferred.append(target)
            else:
                yield target
        yield from deferred

    async def _call(self, target: Target, local: Callable[[LocalDevice], Awaitable[T]],
                    remote: Callable[[], Awaitable[T]]) -> T:
        if target.local is not None:
            return await local(target.local)
        try:
            result = await remote()
        except PeerError as exc:
            if exc.status is None:
                self.health.failed(target.url)
            raise
        self.health.ok(target.url)
        return result

    async def _fan_out(self, path: str, what: str, call: Callable[[Target], Awaitable[T]],
                       stragglers: Callable[[list[asyncio.Task[T]]], None] | None = None,
                       ) -> list[Answer[Target, T]]:
        replicas = self.replicas
        return await gather_quorum(self.candidates(path), call, replicas=replicas,
                                   quorum=quorum_size(replicas), grace_s=self.timeouts.post_quorum_s,
                                   what=what, stragglers=stragglers, gave_up=self._hung)

    async def _ask_quorum(self, path: str, what: str,
                          call: Callable[[Target], Awaitable[T]]) -> list[Answer[Target, T]]:
        """A read that a quorum's answers make right and that repairs nothing (a listing,
        counters): ask a quorum only, this node's own replica first (no HTTP, no JSON), the
        others only if the quorum is slow; do not wait for stragglers."""
        replicas = self.replicas
        candidates = self.candidates(path)
        # This node's own replica among the quorum (a local handoff holds none of it), but
        # started after a peer's: its query would hold the GIL while the request is sent.
        first = list(itertools.islice(candidates, replicas))
        local = [t for t in first if t.local is not None][:1]
        if local:
            rest = [t for t in first if t is not local[0]]
            first = rest[:quorum_size(replicas) - 1] + local + rest[quorum_size(replicas) - 1:]
        return await gather_quorum(itertools.chain(first, candidates), call, replicas=replicas,
                                   quorum=quorum_size(replicas), grace_s=0.0, what=what,
                                   hedge_s=self.timeouts.list_hedge_s, gave_up=self._hung)

    def _hung(self, target: Target) -> None:
        if target.local is None:
            self.health.hung(target.url)

    # -- records -------------------------------------------------------------------

    async def _put_one(self, target: Target, records: list[Record], wire: JsonBody | None = None,
                       want_prior: bool = False) -> tuple[dict[str, int], dict[str, Prior] | None]:
        """Write to one replica: (the newer versions it holds, by name; with `want_prior`,
        the version each record met there, None if the replica cannot say)."""
        async def remote() -> tuple[dict[str, int], dict[str, Prior] | None]:
            params = {"part": str(target.part), **({"prior": "1"} if want_prior else {})}
            status, payload = await self.client.request_json(
                "POST", target.url, f"/_internal/{target.device.device}/records",
                params, wire or JsonBody.of([r.to_wire() for r in records]))
            if status != 200:
                raise PeerError(target.url, f"record write answered {status}", status)
            payload = payload or {}
            newer = {str(k): int(v) for k, v in payload.get("newer", {}).items()}
            said = payload.get("prior") if want_prior else None  # a node older than the field omits it
            return newer, None if said is None else {str(k): (int(t), str(n), bool(live))
                                                     for k, (t, n, live) in said.items()}

        async def local(dev: LocalDevice) -> tuple[dict[str, int], dict[str, Prior] | None]:
            prior: dict[str, Prior] | None = {} if want_prior else None
            return await dev.meta.merge(((r, target.part) for r in records), prior), prior
        return await self._call(target, local, remote)

    def local_rank(self, path: str) -> int | None:
        """Which replica of ``path``'s partition this node holds (0 = the first primary), or
        None: periodic jobs use it to share out work that one node per partition does."""
        ring = self.ring_state.ring
        for rank, device in enumerate(ring.primaries(ring.partition_for_path(path))):
            if (device.ip, device.port, device.device) in self.local_devices:
                return rank
        return None

    async def put_records(self, path: str, records: list[Record], restamp: bool = True) -> None:
        """Write new records that share a placement path; returns once a quorum has them
        durably. A replica holding a newer version of one (this node's clock lags the
        writer of that version) makes us move our clock past it and write it again, so a
        write acknowledged now is never shadowed by one acknowledged before it — unless
        not `restamp`: a write meant to lose to any newer one (a tombstone of one version)."""
        await self._write_records(path, records, want_prior=False, restamp=restamp)

    async def replace_records(self, path: str, records: list[Record]) -> dict[str, bool | None]:
        """put_records, also telling for each record whether it replaced a live version
        (neither a tombstone nor expired), as a quorum read just before would have: the
        newest version the answering replicas (a quorum at least) had. None for a record
        when fewer than a quorum could say (peers older than this answer)."""
        return await self._write_records(path, records, want_prior=True, restamp=True)

    async def _write_records(self, path: str, records: list[Record], want_prior: bool,
                             restamp: bool) -> dict[str, bool | None]:
        # What the first round's replicas had is what a read just before would have seen (a
        # version newer than ours included: it is in the prior too); later rounds only meet
        # our own first write again.
        names, said = [r.name for r in records], 0
        met: dict[str, Prior] = {}  # the newest version a replica had, by name
        for attempt in range(MAX_CLOCK_RETRIES):
            wire = JsonBody.of([r.to_wire() for r in records])  # encoded once for every replica
            answers = await self._fan_out(path, f"write {path}",
                                          functools.partial(self._put_one, records=records, wire=wire,
                                                            want_prior=want_prior))
            newer: dict[str, int] = {}
            for answer in answers:
                answered_newer, prior = answer.value
                for name, ts in answered_newer.items():
                    newer[name] = max(ts, newer.get(name, 0))
                if attempt == 0 and prior is not None:
                    said += 1
                    met.update({name: version for name, version in prior.items()
                                if name not in met or version[:2] > met[name][:2]})
            if not newer or not restamp:
                break
            self.clock.observe(max(newer.values()))
            records = [replace(r, ts=self.clock.now()) for r in records if r.name in newer]
        else:
            log.warning("writes to %s kept losing to newer versions; the cluster's clocks disagree", path)
        if not want_prior:
            return {}
        known = said >= quorum_size(self.replicas)
        return {name: (name in met and met[name][2]) if known else None for name in names}

    async def put_record(self, record: Record) -> None:
        await self.put_records(placement_path(record.kind, record.name), [record])

    async def _get_one(self, target: Target, kind: str, name: str) -> Record | None:
        async def remote() -> Record | None:
            status, payload = await self.client.request_json(
                "GET", target.url, f"/_internal/{target.device.device}/record",
                {"kind": kind, "name": name})
            if status == 404:
                return None
            if status != 200:
                raise PeerError(target.url, f"record read answered {status}", status)
            return Record.from_wire(payload)
        return await self._call(target, lambda dev: dev.meta.get(kind, name), remote)

    def _read_candidates(self, path: str) -> Iterator[Target]:
        """The write candidates, with a replica on this node moved to the front of the
        replica set: a quorum read then costs one round trip fewer."""
        candidates = self.candidates(path)
        replica_set = list(itertools.islice(candidates, self.replicas))
        replica_set.sort(key=lambda target: target.local is None)  # stable: the rest keep ring order
        yield from replica_set
        yield from candidates

    async def get_record(self, kind: str, name: str) -> Record | None:
        """The newest version a quorum knows (tombstones included); stale replicas repaired.

        Only a quorum of the replica set is asked (the local replica first), a failure
        bringing in the next candidate, and the rest of the set too if the quorum has not
        answered within `read_hedge_s` (a peer that hangs): every acknowledged write is on
        a quorum of that set, and two quorums share a replica. The rest is left to
        anti-entropy."""
        path = placement_path(kind, name)
        replicas = self.replicas
        quorum = quorum_size(replicas)
        answers = await gather_quorum(self._read_candidates(path), lambda t: self._get_one(t, kind, name),
                                      replicas=replicas, quorum=quorum, grace_s=0.0,
                                      what=f"read {kind} {name}", max_attempts=replicas * 3,
                                      hedge_s=self.timeouts.read_hedge_s, gave_up=self._hung)
        best = newest([a.value for a in answers])
        if best is not None:
            # A write that follows this read must order after what it saw, however far
            # this node's clock lags the writer's.
            self.clock.observe(best.ts)
            stale = [a.candidate for a in answers
                     if a.value is None or a.value.version < best.version]
            for target in stale:
                self._spawn(self._put_one(target, [best]))
        return best

    async def _list_one(self, target: Target, kind: str, prefix: str, after: str | None,
                        limit: int) -> list[Record]:
        async def remote() -> list[Record]:
            params = {"kind": kind, "prefix": prefix, "limit": str(limit)}
            if after is not None:
                params["after"] = after
            status, payload = await self.client.request_json(
                "GET", target.url, f"/_internal/{target.device.device}/list", params)
            if status != 200:
                raise PeerError(target.url, f"list answered {status}", status)
            return [Record.from_wire(w) for w in payload]
        return await self._call(target, lambda dev: dev.meta.list(kind, prefix, after, limit), remote)

    async def iter_records(self, kind: str, path: str, prefix: str, after: str | None = None,
                           page_size: int = 1000) -> AsyncIterator[Record]:
        """Every record of `kind` under `prefix` in `path`'s partition, in name order, merged
        over a quorum of replicas page by page (tombstones included)."""
        while True:
            answers = await self._fan_out(
                path, f"list {path}",
                functools.partial(self._list_one, kind=kind, prefix=prefix, after=after, limit=page_size))
            merged: dict[str, Record] = {}
            frontier: str | None = None
            for answer in answers:
                for rec in answer.value:
                    have = merged.get(rec.name)
                    if have is None or rec.version > have.version:
                        merged[rec.name] = rec
                if len(answer.value) >= page_size:
                    last = answer.value[-1].name
                    frontier = last if frontier is None or last < frontier else frontier
            # Past the frontier a replica with a full page may hold names we have not seen.
            for name in sorted(merged):
                if frontier is not None and name > frontier:
                    break
                yield merged[name]
            if frontier is None:
                return
            after = frontier

    # -- lean listings ----------------------------------------------------------------

    async def _rows_one(self, target: Target, kind: str, prefix: str, after: str | None, limit: int,
                        delimiter: str, fields: tuple[str, ...], now: float, counters_of: str | None) -> _Page:
        """One replica's page as the JSON text SQLite writes, this node's own too: replicas
        in step send the same bytes, and the coordinator then decodes one page, not each.
        With `counters_of` (a bucket's record name), that bucket's counters too."""
        async def local(dev: LocalDevice) -> _Page:
            page = dev.meta.list_rows_json(kind, prefix, after, limit, delimiter, fields, now)
            if counters_of is None:
                return _Page(await page)
            text, counted = await asyncio.gather(page, dev.meta.bucket_counters(counters_of, now))
            return _Page(text, True, counted)

        async def remote() -> _Page:
            params = {"kind": kind, "prefix": prefix, "limit": str(limit), "delimiter": delimiter,
                      "fields": ",".join(fields), "now": repr(now)}
            if after is not None:
                params["after"] = after
            if counters_of is not None:
                params["counters"] = counters_of
            status, payload = await self.client.request_json_text(
                "GET", target.url, f"/_internal/{target.device.device}/rows", params)
            if status != 200:
                raise PeerError(target.url, f"rows answered {status}", status)
            answer = _Page(payload)
            if counters_of is not None:
                try:
                    split = split_page_with_counters(payload)
                except ValueError as exc:
                    raise PeerError(target.url, f"malformed counters: {exc}") from exc
                if split is not None:
                    answer = _Page(split[0], True, split[1])
            if not (answer.text.startswith(b"[") and answer.text.endswith(b"]")):
                raise PeerError(target.url, "malformed listing page")
            return answer
        return await self._call(target, local, remote)

    @staticmethod
    def _decode_pages(answers: list[Answer[Target, _Page]]) -> list[list[Row]]:
        """The replicas' pages, a text decoded once when the others are the same bytes."""
        texts = [a.value.text for a in answers]
        try:
            if all(text == texts[0] for text in texts[1:]):
                return [json.loads(texts[0])]
            return [json.loads(text) for text in texts]
        except ValueError as exc:
            raise PeerError(answers[0].candidate.url, f"malformed listing page: {exc}") from exc

    async def iter_listing(self, kind: str, path: str, prefix: str, after: str | None = None,
                           delimiter: str = "", fields: tuple[str, ...] = (), page_size: int = 1000,
                           now: float | None = None) -> AsyncIterator[Row | CommonPrefix]:
        """iter_listing_pages' items one by one."""
        async for page in self.iter_listing_pages(kind, path, prefix, after, delimiter, fields, page_size, now):
            for item in page:
                yield item

    async def iter_listing_pages(self, kind: str, path: str, prefix: str, after: str | None = None,
                                 delimiter: str = "", fields: tuple[str, ...] = (), page_size: int = 1000,
                                 now: float | None = None, counters: CountersProbe | None = None
                                 ) -> AsyncIterator[list[Row | CommonPrefix]]:
        """Like iter_records, but lean (rows [name, ts, node, deleted, *fields], the fields
        picked out of each value) and, with a delimiter, with the names under each common prefix rolled up into it
        (see cluster/listing.py for why the merged prefixes are right). Tombstones and
        expired rows are included; a common prefix is given only if a live row is under it.
        A merged page at a time: a listing goes through tens of thousands of items, and a
        step of an async generator per item costs more than the rest of the item's work.
        `counters`: the first page's replicas are asked for a bucket's counters too."""
        now = time.time() if now is None else now
        limit = max(1, min(page_size, MAX_LIST_PAGE))
        while True:
            answers = await self._ask_quorum(
                path, f"list {path}",
                functools.partial(self._rows_one, kind=kind, prefix=prefix, after=after, limit=limit,
                                  delimiter=delimiter, fields=fields, now=now,
                                  counters_of=counters.bucket if counters is not None else None))
            if counters is not None:
                if all(a.value.has_counters for a in answers):
                    counters.found = _newest_counters([a.value.counted for a in answers])
                counters = None
            merged = merge_pages(self._decode_pages(answers), limit)
            items = merged.items
            if merged.disputed:
                items = [item for item in items
                         if not (isinstance(item, CommonPrefix) and item.name in merged.disputed)
                         or await self._any_live(kind, path, item.name, now)]
            if items:
                yield items
            if merged.frontier is None:
                return
            after = merged.frontier

    async def _any_live(self, kind: str, path: str, prefix: str, now: float) -> bool:
        """Does a record-level merge find a live record under `prefix` (replicas disagreed)?"""
        async for row in self.iter_listing(kind, path, prefix, fields=("delete_at",), page_size=100, now=now):
            if not isinstance(row, CommonPrefix) and not row[3] and (row[4] is None or row[4] > now):
                return True
        return False

    async def _counters_one(self, target: Target, bucket: str, now: float) -> tuple[int, int, int] | None:
        async def remote() -> tuple[int, int, int] | None:
            status, payload = await self.client.request_json(
                "GET", target.url, f"/_internal/{target.device.device}/counters", {"bucket": bucket, "now": repr(now)})
            if status != 200:
                raise PeerError(target.url, f"counters answered {status}", status)
            return (int(payload[0]), int(payload[1]), int(payload[2])) if payload else None
        return await self._call(target, lambda dev: dev.meta.bucket_counters(bucket, now), remote)

    async def bucket_counters(self, path: str, bucket: str) -> tuple[int, int]:
        """(objects, bytes) of a bucket, as kept by each replica's triggers: from the replica
        of a quorum that applied the newest change (eventually consistent, as Swift's
        container counters are: a replica that missed a write until repair may undercount).
        Objects already expired are left out, as listings leave them out."""
        answers = await self._ask_quorum(path, f"count {bucket}",
                                         functools.partial(self._counters_one, bucket=bucket, now=time.time()))
        return _newest_counters([a.value for a in answers])

    # -- blocks --------------------------------------------------------------------

    async def _put_block_one(self, target: Target, block: str, data: BlockBytes, ref: str, ts: int,
                             on_progress: Callable[[], None] | None = None) -> None:
        async def local(dev: LocalDevice) -> None:
            await dev.store_block(block, data, BlockRef(block, ref, target.part, ts))

        async def remote() -> None:
            status, _ = await self.client.request(
                "PUT", target.url, f"/_internal/{target.device.device}/block/{block}",
                {"ref": ref, "ts": str(ts), "part": str(target.part)}, data, digest=block,
                on_progress=on_progress)
            if status != 201:
                raise PeerError(target.url, f"block write answered {status}", status)
        await self._call(target, local, remote)

    async def put_block(self, block: str, data: BlockBytes, ref: str, ts: int) -> asyncio.Task[None]:
        """Store a block (its id made from, or checked against, data) on a quorum of its
        replicas. Returns once the quorum has it, with a task that is done when the
        replicas still writing after the grace have finished in the background (or were
        cut off); the caller keeps `data` counted in its memory bounds until then."""
        transfers: dict[asyncio.Task[None], _Transfer] = {}

        def put_one(target: Target) -> Awaitable[None]:
            transfer = _Transfer(target)

            async def call() -> None:
                transfers[asyncio.current_task()] = transfer  # type: ignore[index]
                await self._put_block_one(target, block, data, ref, ts, transfer.moved)
            return call()
        late: list[asyncio.Task[None]] = []
        await self._fan_out(block_path(block), f"write block {block}", put_one, late.extend)
        # (a call that has not run yet, started in place of a failure just now, reports nothing)
        rest = asyncio.create_task(self._let_finish({task: transfers.get(task, _Transfer()) for task in late}))
        self._own(rest)
        return rest

    async def _let_finish(self, late: dict[asyncio.Task[None], _Transfer]) -> None:
        """Let a block's late replicas go on while their bytes keep moving (to a peer that
        reports it); cut off (repair makes those copies later) each one whose bytes have
        not moved for `late_replica_idle_s`, or for as long as they had been moving if
        that is longer.

        Over a slow link the last copy of a 4 MiB block often takes longer than the grace,
        and cutting it off then only makes repair send all of it again. A peer that stops
        taking bytes or answering holds the block's memory a few seconds at most; each
        cut counts as a hang (PeerHealth: one alone does not mark it down, as a busy SD
        card can be that slow to fsync)."""
        grace_end = time.monotonic()
        idle_s = self.timeouts.late_replica_idle_s

        def deadline(task: asyncio.Task[None]) -> float:
            transfer = late[task]
            if transfer.moved_at is None:   # no progress reported (this node's device, a TLS peer)
                return grace_end
            return transfer.moved_at + max(idle_s, transfer.moved_at - transfer.started)
        going = set(late)
        try:
            while going:   # ends: every call is bounded by the request timeout too
                for task in [t for t in going if deadline(t) <= time.monotonic()]:
                    task.cancel()
                    going.discard(task)
                    target = late[task].target
                    if target is not None:
                        self._hung(target)
                if going:
                    wait_s = max(min(deadline(t) for t in going) - time.monotonic(), 0.0)
                    done, _ = await asyncio.wait(going, timeout=wait_s)
                    going -= done
        finally:
            for task in late:
                task.cancel()
            for outcome in await asyncio.gather(*late, return_exceptions=True):
                # A replica's failure is repair's to make up for; anything else is a bug.
                if isinstance(outcome, Exception) and not isinstance(outcome, (ClusterError, StoreError)):
                    log.error("a late block replica failed", exc_info=outcome)

    def _block_readers(self, block: str) -> Iterator[Target]:
        """Where to read a block: its replicas, this node's own first (in a small cluster
        most blocks have a replica here, 3 of 4 with 4 nodes and 3 replicas, and reading it
        costs no hop through a peer and one check, not two), then the handoffs."""
        replicas = self.replicas
        candidates = self.candidates(block_path(block))
        first = sorted(itertools.islice(candidates, replicas), key=lambda t: t.local is None)
        return itertools.islice(itertools.chain(first, candidates), replicas * 3)

    async def get_block(self, block: str) -> bytes:
        """All of a block's bytes, from the first replica that has them intact."""
        for target in self._block_readers(block):
            try:
                return await self._call(target, lambda dev: dev.blocks.get(block),
                                        functools.partial(self._fetch_block, target, block))
            except (NoSuchBlock, CorruptBlock, ClusterError, StoreError):
                continue
        raise BlockUnavailable(block)

    async def read_block(self, block: str, size: int, first: int, last: int) -> bytes:
        """Bytes first..last (inclusive) of a block of `size` bytes, checked, from the first
        replica that has them intact: of a pieced block only the pieces that hold them
        travel; of an older one, the whole block."""
        for target in self._block_readers(block):
            try:
                return await self._call(target, lambda dev: dev.blocks.read_range(block, first, last),
                                        functools.partial(self._fetch_range, target, block, size, first, last))
            except (NoSuchBlock, CorruptBlock, ClusterError, StoreError):
                continue
        raise BlockUnavailable(block)

    async def _fetch_block(self, target: Target, block: str) -> bytes:
        status, data = await self.client.request(
            "GET", target.url, f"/_internal/{target.device.device}/block/{block}",
            max_bytes=MAX_BLOCK_BODY)  # no block is larger: a longer answer is a broken peer
        if status == 404:
            raise NoSuchBlock(block)
        if status != 200:
            raise PeerError(target.url, f"block read answered {status}", status)
        if not await verify_async(block, data):  # damaged on the way
            raise CorruptBlock(block, target.device.device)
        return data

    async def _fetch_range(self, target: Target, block: str, size: int, first: int, last: int) -> bytes:
        """A peer's pieces of a pieced block (all its piece digests, then the pieces that
        cover first..last), checked again here since they crossed the network."""
        if not is_pieced(block):
            return take_range(await self._fetch_block(target, block), 0, first, last)
        piece = piece_size(block)
        start, end = covering_pieces(piece, size, first, last)
        digests_len = digests_size(piece, size)
        status, body = await self.client.request(
            "GET", target.url, f"/_internal/{target.device.device}/block/{block}",
            {"first": str(first), "last": str(last)}, max_bytes=digests_len + end - start)
        if status == 404:
            raise NoSuchBlock(block)
        if status != 200:
            raise PeerError(target.url, f"block read answered {status}", status)
        pieces = memoryview(body)[digests_len:]
        if len(pieces) != end - start or not pieces_match(block, body[:digests_len], start, pieces):
            raise CorruptBlock(block, target.device.device)  # damaged on the way, or not the size the record says
        return bytes(pieces[first - start:last + 1 - start])   # (a view would keep the digests alive)

    # -- housekeeping --------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        """Fire-and-forget work (read repair) that the coordinator owns and awaits on close."""
        self._own(asyncio.ensure_future(coro))

    def _own(self, task: asyncio.Task[Any]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_ignore_failure)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


def _ignore_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # read repair is best effort; anti-entropy finishes the job


def _chain(first: list[Device], rest: Iterator[Device]) -> Iterator[Device]:
    yield from first
    yield from rest
