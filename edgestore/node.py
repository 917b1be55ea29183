"""The composition root: builds one node from its config and runs it.

This is the only module that wires the layers together. Resources are opened in an
aiohttp cleanup context, so they close in reverse order however the node stops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from dataclasses import asdict
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from edgestore.api.admin import AdminGuard, admin_routes
from edgestore.api.admin_cluster import cluster_routes
from edgestore.api.admin_ring import ring_routes
from edgestore.api.s3.auth import admin_check
from edgestore.api.s3.context import S3Services
from edgestore.api.s3.router import S3Api
from edgestore.api.swift.context import SwiftServices
from edgestore.api.swift.router import SwiftApi, is_swift_request
from edgestore.clock import HybridClock
from edgestore.cluster.coordinator import Coordinator
from edgestore.cluster.gossip import RingGossip, gossip_routes
from edgestore.cluster.internal_api import internal_auth_middleware, internal_errors_middleware, internal_routes
from edgestore.cluster.ringkeeper import RingKeeper
from edgestore.cluster.ringstate import RingState, device_url_for
from edgestore.cluster.rpc import InternalClient
from edgestore.cluster.status import node_status
from edgestore.config import NodeConfig, TlsConfig
from edgestore.errors import ConfigError
from edgestore.jobs.lifecycle import Lifecycle
from edgestore.jobs.object_expirer import ObjectExpirer
from edgestore.jobs.runner import JobRunner
from edgestore.jobs.stale_uploads import StaleUploads
from edgestore.model.accounts import Accounts
from edgestore.model.buckets import Buckets
from edgestore.model.multipart import Uploads
from edgestore.model.objects import Objects
from edgestore.model.users import Users
from edgestore.model.versions import Versions
from edgestore.repair.antientropy import AntiEntropy
from edgestore.repair.compaction import SegmentCompaction
from edgestore.repair.gc import GarbageCollector
from edgestore.repair.limiter import ByteRateLimiter
from edgestore.repair.scrub import Scrub
from edgestore.store.device import LocalDevice

__all__ = ["Node", "run_node"]

log = logging.getLogger(__name__)

# Large enough for S3's 8 KiB header lines and many x-amz-meta headers.
MAX_HEADER_BYTES = 16 * 1024


class Node:
    """One node's parts, opened together and closed in reverse order."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.ring_state = RingState.load(config.ring_path)
        window_s = config.group_commit_window_ms / 1000
        self.devices = {d.name: LocalDevice(d.name, d.path, window_s) for d in config.devices}
        local = {(config.advertise_ip, config.advertise_port, name): dev
                 for name, dev in self.devices.items()}
        in_ring = {(d.ip, d.port, d.device) for d in self.ring_state.ring.devices}
        missing = sorted(name for (ip, port, name) in local if (ip, port, name) not in in_ring)
        if missing:
            log.warning("devices %s of node %s (%s:%d) are not in the ring: they will hold no data",
                        missing, config.node_id, config.advertise_ip, config.advertise_port)
        self.clock = HybridClock()
        self.client = InternalClient(config.cluster_secret, config.timeouts)
        self.coordinator = Coordinator(self.ring_state, self.client, local, config.node_id,
                                       config.timeouts, self.clock)
        self.users = Users(self.coordinator, self.clock, config.node_id)
        objects = Objects(self.coordinator, self.clock, config)
        uploads = Uploads(self.coordinator, objects, self.clock, config.node_id)
        buckets = Buckets(self.coordinator, self.clock, config.node_id)
        versions = Versions(self.coordinator, objects, self.clock, config.node_id)
        self.services = S3Services(config, self.users, buckets, objects, uploads, versions)
        self.swift_services = SwiftServices(config, self.users, buckets, objects, versions,
                                            Accounts(self.coordinator, self.clock, config.node_id))
        repair = config.repair
        self.anti_entropy = AntiEntropy(self.coordinator, repair.interval_s, ByteRateLimiter(repair.bytes_per_s),
                                        repair.concurrency)
        self.gc = GarbageCollector(self.coordinator, repair.gc_interval_s, repair.gc_grace_s, repair.reclaim_age_s,
                                   repair.concurrency)
        self.scrub = Scrub(self.coordinator, repair.scrub_interval_s, ByteRateLimiter(repair.scrub_bytes_per_s))
        self.self_url = device_url_for(config.advertise_ip, config.advertise_port)
        self.gossip = RingGossip(RingKeeper(self.ring_state), self.client, self.self_url, config.node_id,
                                 config.peers, config.gossip.interval_s, config.gossip.fanout,
                                 config.gossip.member_expiry_s)
        self.jobs = JobRunner([
            StaleUploads(list(self.devices.values()), uploads, config.stale_upload_age_s,
                         config.stale_upload_interval_s),
            self.anti_entropy,
            self.scrub,
            self.gc,
            ObjectExpirer(objects.expiry, buckets, versions, config.object_expirer_interval_s),
            Lifecycle(self.coordinator, buckets, objects, versions, uploads, config.lifecycle_interval_s),
            SegmentCompaction(self.devices.values()),
            self.gossip,
        ])

    def app(self) -> web.Application:
        config = self.config
        app = web.Application(
            middlewares=[internal_auth_middleware(config.cluster_secret, self.clock), internal_errors_middleware],
            # Bodies are stored as sent: a Content-Encoding (gzip...) describes the object.
            handler_args={"max_line_size": MAX_HEADER_BYTES, "max_field_size": MAX_HEADER_BYTES,
                          "auto_decompress": False},
        )
        app.router.add_routes(internal_routes(self.devices))
        app.router.add_routes(gossip_routes(self.gossip))
        guard = AdminGuard(config.cluster_secret, admin_check(self.services))
        app.router.add_routes(admin_routes(config.node_id, self.ring_state, self.users, guard,
                                           sorted(self.devices), self.jobs))
        app.router.add_routes(cluster_routes(self.self_url, self.coordinator, self.services.buckets, self.jobs, guard,
                                             self.status, self.gossip.member_urls))
        app.router.add_routes(ring_routes(self.gossip, guard))
        s3, swift = S3Api(self.services), SwiftApi(self.swift_services)
        app.on_response_prepare.append(swift.on_response_prepare)  # temp URLs' header rules
        app.on_response_prepare.append(s3.on_response_prepare)  # CORS headers

        async def front(request: web.Request) -> web.StreamResponse:
            """Swift's paths are valid S3 paths too: is_swift_request decides by credentials."""
            if is_swift_request(request, config.s3_domain):
                return await swift.handle(request)
            return await s3.handle(request)

        # [\s\S], not ".": an S3 key may hold a line feed.
        app.router.add_route("*", r"/{tail:[\s\S]*}", front)
        return app

    async def status(self) -> dict[str, Any]:
        return await node_status(self.config.node_id, self.coordinator, self.anti_entropy,
                                 {"scrub": asdict(self.scrub.progress), "gc": asdict(self.gc.progress),
                                  "jobs": {name: vars(state) for name, state in self.jobs.state.items()}})

    async def close(self) -> None:
        await self.jobs.stop()
        await self.coordinator.close()
        await self.client.close()
        for device in self.devices.values():
            device.close()


def _server_ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {tls.cert_file}: {exc}") from exc
    return context


class _QuietBadRequests(logging.Filter):
    """aiohttp logs every malformed request it refuses (with 400) at ERROR with a
    traceback: anyone could fill the log of a Pi's SD card that way. One line at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (HttpProcessingError, ConnectionError)):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args, record.exc_info, record.exc_text = f"refused a malformed request: {exc}", (), \
                None, None
        return True


async def run_node(config: NodeConfig) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly."""
    logging.getLogger("aiohttp.server").addFilter(_QuietBadRequests())
    ssl_context = _server_ssl_context(config.tls) if config.tls is not None else None
    node = Node(config)
    runner = web.AppRunner(node.app(), access_log=None, handle_signals=False)
    await runner.setup()
    sites = [web.TCPSite(runner, config.listen_host, config.listen_port, reuse_address=True, backlog=512)]
    if config.tls is not None:
        sites.append(web.TCPSite(runner, config.tls.listen_host, config.tls.listen_port, reuse_address=True,
                                 backlog=512, ssl_context=ssl_context))
    try:
        for site in sites:
            await site.start()
    except OSError as exc:
        await runner.cleanup()
        await node.close()
        raise ConfigError(f"cannot listen: {exc.strerror}") from exc
    log.info("node %s serving on %s:%d", config.node_id, config.listen_host, config.listen_port)
    node.jobs.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("node %s stopping", config.node_id)
        await runner.cleanup()
        await node.close()
