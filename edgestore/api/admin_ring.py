"""Ring changes against a running cluster, answered by any node (admins only):

    GET    /_admin/ring                      the ring: version, checksum, devices with
                                             weights and partition-replicas held
    POST   /_admin/ring/devices              add a device ({region, zone, ip, port, device, weight})
    DELETE /_admin/ring/devices/ID           remove a device (drained at the next rebalance)
    POST   /_admin/ring/devices/ID/weight    set a device's weight ({weight})
    POST   /_admin/ring/rebalance            reassign partitions ({seed, pretend_min_part_hours_passed})

Each change first catches up with the newest ring any peer has (so two operators working
through two nodes edit the same ring), edits the builder in this node's ring file with
Swift's builder rules (min_part_hours included), writes a new ring version atomically,
serves with it, and announces it to every peer at once; the answer tells which version
each peer now serves. Data then moves by anti-entropy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from edgestore.api.admin import ADMIN_PREFIX, AdminGuard, json_object
from edgestore.cluster.gossip import RingGossip
from edgestore.cluster.ringkeeper import StaleRing
from edgestore.ring import (
    DuplicateDevice,
    RebalanceError,
    RingBuilder,
    RingError,
    UnknownDevice,
    load_builder,
)

__all__ = ["ring_routes"]

DEVICE_FIELDS = ("region", "zone", "ip", "port", "device", "weight")


def _error(exc: Exception) -> web.HTTPException:
    text = f"{exc}\n"
    if isinstance(exc, UnknownDevice):
        return web.HTTPNotFound(text=text)
    if isinstance(exc, (DuplicateDevice, StaleRing, RebalanceError)):
        return web.HTTPConflict(text=text)
    return web.HTTPBadRequest(text=text)


def _device_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPBadRequest(text="a device id is an integer\n") from None


def ring_routes(gossip: RingGossip, guard: AdminGuard) -> list[web.RouteDef]:
    keeper = gossip.keeper

    async def change(edit: Callable[[RingBuilder], Any], status: int = 200) -> web.Response:
        await gossip.spread()   # catch up first: edit the newest ring in the cluster
        try:
            ring, outcome = await keeper.change(edit)
        except (RingError, StaleRing) as exc:
            raise _error(exc) from exc
        spread = await gossip.spread()
        return web.json_response({**(outcome or {}), "version": ring.version, "checksum": ring.checksum,
                                  "peers": spread["versions"], "unreachable": spread["peers"] - spread["reachable"]},
                                 status=status)

    async def show(request: web.Request) -> web.Response:
        await guard.body(request)
        try:
            builder = load_builder(keeper.state.path)
        except (OSError, RingError) as exc:
            raise web.HTTPServiceUnavailable(text=f"ring file unreadable: {exc}\n") from exc
        ring = keeper.ring
        return web.json_response({**builder.describe(), "serving_version": ring.version,
                                  "checksum": ring.checksum})

    async def add_device(request: web.Request) -> web.Response:
        spec = json_object(await guard.body(request))
        missing = [name for name in DEVICE_FIELDS if name not in spec]
        if missing:
            raise web.HTTPBadRequest(text=f"missing {', '.join(missing)}\n")
        fields = {name: spec[name] for name in DEVICE_FIELDS}
        return await change(lambda builder: {"id": builder.add_device(**fields)}, status=201)

    async def remove_device(request: web.Request) -> web.Response:
        await guard.body(request)
        dev_id = _device_id(request)
        return await change(lambda builder: builder.remove_device(dev_id))

    async def set_weight(request: web.Request) -> web.Response:
        spec = json_object(await guard.body(request))
        dev_id = _device_id(request)
        if "weight" not in spec:
            raise web.HTTPBadRequest(text="missing weight\n")
        return await change(lambda builder: builder.set_weight(dev_id, spec["weight"]))

    async def rebalance(request: web.Request) -> web.Response:
        spec = json_object(await guard.body(request))
        seed = spec.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise web.HTTPBadRequest(text="seed must be an integer\n")
        pretend = spec.get("pretend_min_part_hours_passed", False)
        if not isinstance(pretend, bool):
            raise web.HTTPBadRequest(text="pretend_min_part_hours_passed must be true or false\n")

        def edit(builder: RingBuilder) -> dict[str, Any]:
            if pretend:
                builder.pretend_min_part_hours_passed()
            result = builder.rebalance(seed=seed)
            return {"moved": result.moved, "balance": result.balance}
        return await change(edit)

    prefix = ADMIN_PREFIX + "ring"
    return [
        web.get(prefix, show),
        web.post(prefix + "/devices", add_device),
        web.delete(prefix + "/devices/{id}", remove_device),
        web.post(prefix + "/devices/{id}/weight", set_weight),
        web.post(prefix + "/rebalance", rebalance),
    ]
