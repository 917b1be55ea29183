"""Ring gossip: every node tells its peers which ring it serves with, and a node that hears
of a newer ring fetches it, checks it and adopts it, so all nodes converge on the newest.

One round (the `ring-gossip` job, every `[gossip] interval_s`): announce this node's ring
version and checksum, and the nodes it knows of, to its peers — the nodes of the ring,
the `peers` of its config (a joining node's `--join` URL among them), and every node that
announced itself lately (up to `fanout` of them, chosen at random, when there are more).
Each side compares: whoever is behind fetches the ring file from the other
(`GET /_internal/_node/ring`) and adopts it through the `RingKeeper`, which refuses
anything damaged or not newer. An admin change on one node runs a round to every peer at
once (`spread`), so a change is everywhere within one request, and gossip only covers
nodes that were down or unreachable at that moment.

The nodes heard from form the member list: how `status` finds nodes whose devices are not
(or no longer) in the ring, such as a node that just joined or one draining after its
removal. A member not heard of for `member_expiry_s` is forgotten.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from edgestore.cluster.ringkeeper import RingKeeper, RingKey
from edgestore.cluster.ringstate import device_url
from edgestore.cluster.rpc import BODY_HEADER, InternalClient, body_digest
from edgestore.errors import ClusterError
from edgestore.ring import RingError
from edgestore.streams import BodyTooLarge, read_limited

__all__ = ["RingGossip", "gossip_routes", "NODE_RING_PATH", "ANNOUNCE_PATH"]

log = logging.getLogger(__name__)

NODE_RING_PATH = "/_internal/_node/ring"
ANNOUNCE_PATH = "/_internal/_node/ring/announce"
MAX_ANNOUNCE_BODY = 1024 * 1024
ROUND_TIMEOUT_S = 30.0


@dataclass
class Member:
    url: str
    node: str
    seen: float   # unix time this node was last heard of, directly or through a peer

    def to_wire(self) -> dict[str, Any]:
        return {"url": self.url, "node": self.node, "seen": self.seen}


def _clean_url(url: str) -> str:
    return url.strip().rstrip("/")


class RingGossip:
    name = "ring-gossip"

    def __init__(self, keeper: RingKeeper, client: InternalClient, self_url: str, node_id: str,
                 peers: Iterable[str], interval_s: float, fanout: int, member_expiry_s: float) -> None:
        self.keeper = keeper
        self.interval_s = interval_s
        self._client = client
        self.self_url = _clean_url(self_url)
        self._node_id = node_id
        self._peers = {_clean_url(p) for p in peers} - {self.self_url}
        self._fanout = max(1, fanout)
        self._expiry_s = member_expiry_s
        self._members: dict[str, Member] = {}

    # -- who is out there ----------------------------------------------------------

    def members(self) -> list[Member]:
        """Nodes heard of lately (this one included), forgetting those gone quiet."""
        now = time.time()
        for url in [u for u, m in self._members.items() if now - m.seen > self._expiry_s]:
            del self._members[url]
        me = Member(self.self_url, self._node_id, now)
        return [me, *self._members.values()]

    def member_urls(self) -> list[str]:
        """Every node a cluster-wide status should ask: the ring's and the members."""
        ring_urls = {device_url(d) for d in self.keeper.ring.devices}
        return sorted(ring_urls | {m.url for m in self.members()})

    def targets(self) -> list[str]:
        urls = {device_url(d) for d in self.keeper.ring.devices} | self._peers
        urls |= {m.url for m in self.members()}
        urls.discard(self.self_url)
        return sorted(urls)

    def _heard(self, entries: Any) -> None:
        if not isinstance(entries, list):
            return
        for entry in entries:
            try:
                url, node, seen = _clean_url(str(entry["url"])), str(entry["node"]), float(entry["seen"])
            except (KeyError, TypeError, ValueError):
                continue
            if url == self.self_url or not url.startswith(("http://", "https://")):
                continue
            seen = min(seen, time.time())   # a peer's fast clock must not keep a member forever
            known = self._members.get(url)
            if known is None or known.seen < seen:
                self._members[url] = Member(url, node, seen)

    # -- the messages --------------------------------------------------------------

    def announcement(self) -> dict[str, Any]:
        version, checksum = self.keeper.key
        return {"url": self.self_url, "node": self._node_id, "version": version, "checksum": checksum,
                "members": [m.to_wire() for m in self.members()]}

    async def fetch_from(self, url: str) -> bool:
        """Fetch `url`'s ring and adopt it if it is newer; False if it was not."""
        status, data = await self._client.request("GET", url, NODE_RING_PATH)
        if status != 200:
            raise ClusterError(f"{url}: ring fetch answered {status}")
        try:
            return await self.keeper.install(data, url)
        except RingError as exc:
            raise ClusterError(f"{url}: unusable ring: {exc}") from exc

    async def receive(self, message: Any) -> dict[str, Any]:
        """A peer's announcement: note it, catch up with its ring if it is newer, answer
        with this node's (perhaps just adopted) ring."""
        if not isinstance(message, dict):
            raise ValueError("an announcement is a JSON object")
        url = _clean_url(str(message.get("url", "")))
        theirs = _key_of(message)
        self._heard([{"url": url, "node": message.get("node", ""), "seen": time.time()}])
        self._heard(message.get("members"))
        if theirs > self.keeper.key and url.startswith(("http://", "https://")):
            try:
                async with asyncio.timeout(ROUND_TIMEOUT_S):
                    await self.fetch_from(url)
            except (ClusterError, TimeoutError) as exc:
                log.warning("ring gossip: could not fetch version %d from %s: %s", theirs[0], url, exc)
        return self.announcement()

    async def _announce(self, url: str) -> RingKey | None:
        try:
            async with asyncio.timeout(ROUND_TIMEOUT_S):
                status, answer = await self._client.request_json("POST", url, ANNOUNCE_PATH, None,
                                                                 self.announcement())
        except (ClusterError, TimeoutError) as exc:
            log.debug("ring gossip: %s unreachable: %s", url, exc)
            return None
        if status != 200 or not isinstance(answer, dict):
            log.info("ring gossip: %s answered %d", url, status)
            return None
        self._heard(answer.get("members"))
        try:
            return _key_of(answer)
        except ValueError:
            return None

    # -- rounds --------------------------------------------------------------------

    async def spread(self, urls: Iterable[str] | None = None) -> dict[str, Any]:
        """Announce to `urls` (default: every target) and catch up with the newest ring
        any of them answered with. Returns which version each peer now serves."""
        await self.keeper.refresh_from_disk()
        targets = sorted(set(urls) if urls is not None else self.targets())
        answers = await asyncio.gather(*(self._announce(url) for url in targets))
        heard = {url: key for url, key in zip(targets, answers, strict=True) if key is not None}
        updated = False
        for url, key in sorted(heard.items(), key=lambda item: item[1], reverse=True):
            if key <= self.keeper.key:
                break
            try:
                async with asyncio.timeout(ROUND_TIMEOUT_S):
                    updated = await self.fetch_from(url)
                break
            except (ClusterError, TimeoutError) as exc:
                log.warning("ring gossip: could not fetch version %d from %s: %s", key[0], url, exc)
        return {"version": self.keeper.ring.version, "updated": updated, "peers": len(targets),
                "reachable": len(heard), "versions": {url: key[0] for url, key in heard.items()}}

    async def run_once(self, **options: Any) -> dict[str, Any]:
        targets = self.targets()
        if len(targets) > self._fanout and not options.get("all"):
            targets = random.sample(targets, self._fanout)
        result = await self.spread(targets)
        result.pop("versions")
        return result


def _key_of(message: dict[str, Any]) -> RingKey:
    version, checksum = message.get("version"), message.get("checksum")
    if isinstance(version, bool) or not isinstance(version, int) or not isinstance(checksum, str):
        raise ValueError("an announcement needs an integer version and a checksum")
    return (version, checksum)


def gossip_routes(gossip: RingGossip) -> list[web.RouteDef]:
    """What peers call (the internal middleware has checked their signature)."""

    async def ring_file(request: web.Request) -> web.Response:
        try:
            data = gossip.keeper.file_bytes()
        except OSError as exc:
            raise web.HTTPServiceUnavailable(text=f"ring file unreadable: {exc.strerror}\n") from exc
        return web.Response(body=data, content_type="application/octet-stream")

    async def announce(request: web.Request) -> web.Response:
        try:
            body = await read_limited(request.content, MAX_ANNOUNCE_BODY)
        except BodyTooLarge:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_ANNOUNCE_BODY,
                                                actual_size=MAX_ANNOUNCE_BODY + 1) from None
        if body_digest(body) != request.headers.get(BODY_HEADER):
            raise web.HTTPBadRequest(text="body does not match its signed digest\n")
        try:
            answer = await gossip.receive(json.loads(body))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"bad announcement: {exc}\n") from exc
        return web.json_response(answer)

    return [web.get(NODE_RING_PATH, ring_file), web.post(ANNOUNCE_PATH, announce)]
