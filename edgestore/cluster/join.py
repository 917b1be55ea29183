"""`edgestore serve --join URL`: before a new node serves, it fetches the cluster's current
ring from a node of the cluster (a request signed with the cluster secret of its config)
and adopts it unless its own ring file is already as new. The node then serves with no
device of its own in the ring — `status` shows it as unassigned — until an operator adds
one; its gossip announces it to the node it joined (kept among its `peers`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

from edgestore.cluster.gossip import NODE_RING_PATH
from edgestore.cluster.ringkeeper import ring_from_bytes, ring_key
from edgestore.cluster.ringstate import RingState
from edgestore.cluster.rpc import InternalClient
from edgestore.config import NodeConfig
from edgestore.errors import ConfigError, PeerError
from edgestore.ring import RingError, atomic_write

__all__ = ["join_cluster"]

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 60.0


async def _fetch(config: NodeConfig, url: str) -> bytes:
    client = InternalClient(config.cluster_secret, config.timeouts)
    try:
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            status, data = await client.request("GET", url, NODE_RING_PATH)
    except (PeerError, TimeoutError) as exc:
        raise ConfigError(f"--join {url}: cannot reach the cluster: {exc}") from exc
    finally:
        await client.close()
    if status == 403:
        raise ConfigError(f"--join {url}: refused (403): is the cluster secret of this node the cluster's?")
    if status != 200:
        raise ConfigError(f"--join {url}: the ring fetch answered {status}")
    return data


def _adopt(path: Path, data: bytes, url: str) -> int:
    """Write the fetched ring unless the local file is as new; returns the version in use."""
    try:
        fetched = ring_from_bytes(data, url)
    except RingError as exc:
        raise ConfigError(f"--join {url}: the ring it sent is unusable: {exc}") from exc
    try:
        local = RingState.load(path).ring
    except FileNotFoundError:
        local = None
    except (OSError, RingError) as exc:
        log.warning("ring file %s unusable (%s): replacing it with the cluster's", path, exc)
        local = None
    if local is not None and ring_key(local) >= ring_key(fetched):
        log.info("joining %s: keeping ring version %d (the cluster's is %d)", url, local.version, fetched.version)
        return int(local.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    log.info("joined %s: ring version %d", url, fetched.version)
    return int(fetched.version)


def join_cluster(config: NodeConfig, url: str) -> NodeConfig:
    """Fetch and adopt the cluster's ring from `url`; returns the config to serve with
    (`url` added to its peers, so gossip announces this node there)."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--join needs a node's URL (http://host:port), got {url!r}")
    data = asyncio.run(_fetch(config, url))
    _adopt(config.ring_path, data, url)
    return replace(config, peers=(*config.peers, url))
