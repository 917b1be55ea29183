"""Cluster-wide admin operations, answered by any node: status of every node, where an
object's replicas and blocks are, and running a background pass on every node now.

The node asked fans out to its peers over the signed internal API (/_internal/_node/...,
a name no device can have), so an operator needs to reach only one node.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from aiohttp import web

from edgestore.api.admin import ADMIN_PREFIX, AdminGuard, job_request
from edgestore.cluster.coordinator import Coordinator
from edgestore.cluster.ringstate import device_url
from edgestore.errors import ClusterError, StoreError
from edgestore.jobs.runner import JobRunner
from edgestore.model.buckets import Buckets
from edgestore.ring import Device
from edgestore.store.records import KIND_OBJECT, block_path, object_name, placement_path

__all__ = ["cluster_routes"]

NODE_PREFIX = "/_internal/_node/"
FAN_OUT_TIMEOUT_S = 30.0
JOB_TIMEOUT_S = 3600.0

StatusFn = Callable[[], Awaitable[dict[str, Any]]]


def _node_urls(coordinator: Coordinator) -> list[str]:
    return sorted({device_url(d) for d in coordinator.ring_state.ring.devices})


def cluster_routes(self_url: str, coordinator: Coordinator, buckets: Buckets, jobs: JobRunner,
                   guard: AdminGuard, status: StatusFn,
                   node_urls: Callable[[], list[str]] | None = None) -> list[web.RouteDef]:
    """`node_urls` lists every node to ask (default: the ring's; with gossip, also nodes
    whose devices are not in the ring, such as one that joined or one draining)."""
    client = coordinator.client
    nodes_of_cluster = node_urls or (lambda: _node_urls(coordinator))

    async def ask_node(url: str, method: str, path: str, payload: Any = None,
                       timeout_s: float = FAN_OUT_TIMEOUT_S) -> Any:
        # The client's own deadline, not one around it: the configured request deadline
        # (30 s) would end a pass that takes minutes and report its node down.
        code, answer = await client.request_json(method, url, NODE_PREFIX + path, None, payload, timeout_s)
        if code != 200:
            raise ClusterError(f"{url}: {path} answered {code}")
        return answer

    async def each_node(call: Callable[[str], Awaitable[Any]]) -> list[Any]:
        """One answer per node of the ring (this one locally), a failure as {"up": False}."""
        async def one(url: str) -> Any:
            try:
                return await call(url)
            except (ClusterError, StoreError, TimeoutError) as exc:
                return {"url": url, "up": False, "error": str(exc)}
        return list(await asyncio.gather(*(one(url) for url in nodes_of_cluster())))

    # -- this node, for peers ------------------------------------------------------

    async def own_status(request: web.Request) -> web.Response:
        return web.json_response({"url": self_url, **await status()})

    async def own_job_run(request: web.Request) -> web.Response:
        name, options = job_request(jobs, request.match_info["name"], await request.read())
        return web.json_response({"url": self_url, "result": await jobs.run_once(name, **options)})

    # -- the cluster, for operators ------------------------------------------------

    async def cluster_status(request: web.Request) -> web.Response:
        await guard.body(request)

        async def call(url: str) -> Any:
            if url == self_url:
                return {"url": url, **await status()}
            return await ask_node(url, "GET", "status")
        nodes = await each_node(call)
        ring = coordinator.ring_state.ring
        return web.json_response({"ring_version": ring.version, "partitions": ring.partitions,
                                  "replicas": ring.replicas, "nodes": nodes})

    async def cluster_job_run(request: web.Request) -> web.Response:
        """Run one pass of a job on every node at once; answers when all have finished."""
        name, options = job_request(jobs, request.match_info["name"], await guard.body(request))

        async def call(url: str) -> Any:
            if url == self_url:
                return {"url": url, "result": await jobs.run_once(name, **options)}
            return await ask_node(url, "POST", f"jobs/{name}/run", options, JOB_TIMEOUT_S)
        return web.json_response({"job": name, "nodes": await each_node(call)})

    async def locate(request: web.Request) -> web.Response:
        """Where each replica of an object and of each of its blocks is, and whether each
        copy is there and intact."""
        await guard.body(request)
        bucket_name, key = request.query.get("bucket", ""), request.query.get("key", "")
        bucket = await buckets.lookup(bucket_name, use_cache=False)
        if bucket is None:
            raise web.HTTPNotFound(text=f"no bucket {bucket_name!r}\n")
        name = object_name(bucket.account, bucket.name, key)
        ring = coordinator.ring_state.ring
        part = ring.partition_for_path(placement_path(KIND_OBJECT, name))
        record = await coordinator.get_record(KIND_OBJECT, name)
        if record is None or record.deleted:
            raise web.HTTPNotFound(text=f"no object {key!r} in {bucket_name!r}\n")
        replicas = list(await asyncio.gather(*(_check_record(coordinator, d, KIND_OBJECT, name)
                                               for d in ring.primaries(part))))
        for entry in replicas:
            # A stale version is there but not a replica of what readers get.
            entry["current"] = (entry.get("ts"), entry.get("writer")) == (record.ts, record.node)
        blocks = []
        for index, (block, size) in enumerate(record.value.get("blocks", [])):
            bpart = ring.partition_for_path(block_path(block))
            copies = await asyncio.gather(*(_check_block(coordinator, d, bpart, block) for d in ring.primaries(bpart)))
            blocks.append({"index": index, "block": block, "size": size, "partition": bpart, "replicas": copies})
        return web.json_response({"bucket": bucket.name, "key": key, "account": bucket.account,
                                  "partition": part, "inline": record.data is not None or "blocks" not in record.value,
                                  "replicas": replicas, "blocks": blocks})

    return [
        web.get(NODE_PREFIX + "status", own_status),
        web.post(NODE_PREFIX + "jobs/{name}/run", own_job_run),
        web.get(ADMIN_PREFIX + "status", cluster_status),
        web.post(ADMIN_PREFIX + "cluster/jobs/{name}/run", cluster_job_run),
        web.get(ADMIN_PREFIX + "locate", locate),
    ]


async def _check(coordinator: Coordinator, device: Device, path: str, params: dict[str, str],
                 local: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"device": device.device, "node": device_url(device), "device_id": device.id}
    try:
        if coordinator.local_devices.get((device.ip, device.port, device.device)) is not None:
            answer = await local()
        else:
            code, answer = await coordinator.client.request_json("GET", device_url(device),
                                                                 f"/_internal/{device.device}{path}", params)
            if code != 200:
                raise ClusterError(f"answered {code}")
    except (ClusterError, StoreError) as exc:
        return {**entry, "present": False, "intact": False, "reachable": False, "error": str(exc)}
    return {**entry, "reachable": True, **answer}


async def _check_record(coordinator: Coordinator, device: Device, kind: str, name: str) -> dict[str, Any]:
    async def local() -> dict[str, Any]:
        dev = coordinator.local_devices[(device.ip, device.port, device.device)]
        record, intact = await dev.meta.check(kind, name)
        if record is None:
            return {"present": False, "intact": False}
        return {"present": True, "intact": intact, "ts": record.ts, "writer": record.node,
                "deleted": record.deleted}
    return await _check(coordinator, device, "/check", {"kind": kind, "name": name}, local)


async def _check_block(coordinator: Coordinator, device: Device, part: int, block: str) -> dict[str, Any]:
    async def local() -> dict[str, Any]:
        dev = coordinator.local_devices[(device.ip, device.port, device.device)]
        present, intact = await dev.blocks.check(block)
        return {"present": present, "intact": intact}
    return await _check(coordinator, device, f"/block/{block}/check", {}, local)

