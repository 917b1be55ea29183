"""A node's configuration: read from TOML once, checked, frozen.

Example (deploy/node.example.toml has every key with comments)::

    [node]
    id = "pi-01"
    listen = "0.0.0.0:8080"          # where S3, Swift, admin and internal APIs are served
    advertise = "192.168.1.21:8080"  # ip:port as written in the ring (default: listen)
    ring = "/etc/edgestore/cluster.ring"
    cluster_secret_file = "/etc/edgestore/secret"   # or cluster_secret = "..."
    peers = ["http://192.168.1.22:8080"]

    [[devices]]
    name = "sda1"
    path = "/srv/edgestore/sda1"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgestore.errors import ConfigError

__all__ = ["DeviceConfig", "GossipConfig", "NodeConfig", "RepairConfig", "TlsConfig", "Timeouts", "load_config",
           "parse_config", "MAX_GROUP_COMMIT_WINDOW_MS"]

MAX_GROUP_COMMIT_WINDOW_MS = 1000


@dataclass(frozen=True)
class DeviceConfig:
    name: str
    path: Path


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 2.0
    request_s: float = 30.0
    # After a quorum has answered, stragglers get this long before they are abandoned.
    post_quorum_s: float = 0.5
    # A block's replica still writing then goes on in the background while its bytes keep
    # moving; it is cut off once they have not moved for this long (or for as long as
    # they had been moving, if longer). TCP on a lossy link can stall for a second or so.
    late_replica_idle_s: float = 2.0
    # A listing page asks a quorum of replicas (this node's own first); the others are
    # asked too only if the quorum has not answered within this long.
    list_hedge_s: float = 0.5
    # A record read (an object's HEAD or GET, a bucket's lookup) asks a quorum alike, and
    # the rest of the replica set after this long.
    read_hedge_s: float = 0.5
    # A peer that refused a connection is skipped (its handoff used instead) for this long.
    peer_suppress_s: float = 5.0


@dataclass(frozen=True)
class RepairConfig:
    """[repair]: the background passes that keep replicas whole. The byte rate bounds
    repair traffic, so a node catching up does not starve clients or wear SD cards out."""
    interval_s: float = 30.0
    bytes_per_s: float = 8.0 * 1024 * 1024
    concurrency: int = 4
    # Scrub re-reads everything once per interval, at most this fast (SD cards wear on reads
    # far less than on writes, but a Pi's one disk also serves clients).
    scrub_interval_s: float = 24 * 3600.0
    scrub_bytes_per_s: float = 4.0 * 1024 * 1024
    # Garbage collection: blocks an overwrite or delete freed are deleted after gc_grace_s
    # (uploads in flight and copies being made finish first); tombstones after
    # reclaim_age_s (a replica away longer than that can bring a deleted object back).
    gc_interval_s: float = 3600.0
    gc_grace_s: float = 6 * 3600.0
    reclaim_age_s: float = 7 * 24 * 3600.0


@dataclass(frozen=True)
class GossipConfig:
    """[gossip]: how often a node tells peers its ring version, to how many at most (chosen
    at random each round when there are more), and when a silent non-ring node is forgotten."""
    interval_s: float = 5.0
    fanout: int = 8
    member_expiry_s: float = 300.0


@dataclass(frozen=True)
class TlsConfig:
    """HTTPS for clients, on a port of its own beside the plain one (peers keep using the
    plain port: their requests are signed with the cluster secret)."""
    listen_host: str
    listen_port: int
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    listen_host: str
    listen_port: int
    advertise_ip: str
    advertise_port: int
    ring_path: Path
    cluster_secret: bytes
    devices: tuple[DeviceConfig, ...]
    peers: tuple[str, ...] = ()
    inline_max_bytes: int = 16 * 1024
    # Larger objects are cut into blocks of this size. Each block costs a file, two fsyncs
    # and a request per replica, so larger blocks take a third off a large PUT's CPU at
    # 4 MiB against 1 MiB (docs/performance.md); reads stay small whatever the size, since
    # a block is read and checked by 64 KiB pieces (store/blockid.py).
    block_size_bytes: int = 4 * 1024 * 1024
    # Blocks in flight per request and in total: caps the node's buffer memory (16 MiB).
    blocks_in_flight_per_request: int = 2
    blocks_in_flight_total: int = 4
    # How long a record write may wait for overlapping ones to share its commit (fewer
    # bytes written per object on an SD card, some latency under concurrency); 0: never.
    group_commit_window_ms: float = 50.0
    s3_domain: str | None = None
    region: str = "us-east-1"
    # The region Keystone's service catalog names for the object store ([swift] region).
    swift_region: str = "RegionOne"
    timeouts: Timeouts = field(default_factory=Timeouts)
    tls: TlsConfig | None = None
    # Multipart uploads untouched this long are aborted (like S3's lifecycle rule
    # AbortIncompleteMultipartUpload); the job looks every stale_upload_interval_s.
    stale_upload_age_s: float = 7 * 24 * 3600
    stale_upload_interval_s: float = 3600
    repair: RepairConfig = field(default_factory=RepairConfig)
    gossip: GossipConfig = field(default_factory=GossipConfig)
    # How often the object expirer deletes objects whose X-Delete-At has passed (reads hide
    # them from that second on anyway); Swift's expirer runs every 300 s too.
    object_expirer_interval_s: float = 300
    # How often the lifecycle job applies buckets' S3 lifecycle rules (jobs/lifecycle.py).
    lifecycle_interval_s: float = 3600
    config_path: Path | None = None


def _split_hostport(value: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{key} must be host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def load_config(path: str | Path) -> NodeConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse_config(raw, base=path.parent, config_path=path)


def _get(table: dict[str, Any], key: str, kind: type, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise ConfigError(f"missing required key {key!r}")
        return default
    value = table[key]
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{key!r} must be a {kind.__name__}")
    return value


def _store_window_ms(store: dict[str, Any]) -> float:
    value = store.get("group_commit_window_ms", NodeConfig.group_commit_window_ms)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_GROUP_COMMIT_WINDOW_MS:
        raise ConfigError("[store] group_commit_window_ms must be a number of milliseconds from 0 to "
                          f"{MAX_GROUP_COMMIT_WINDOW_MS}")
    return float(value)


def parse_config(raw: dict[str, Any], base: Path, config_path: Path | None = None) -> NodeConfig:
    node = raw.get("node")
    if not isinstance(node, dict):
        raise ConfigError("missing [node] table")
    listen_host, listen_port = _split_hostport(_get(node, "listen", str), "listen")
    advertise = _get(node, "advertise", str, f"{listen_host}:{listen_port}")
    adv_ip, adv_port = _split_hostport(advertise, "advertise")
    if "cluster_secret" in node:
        secret = _get(node, "cluster_secret", str).encode()
    elif "cluster_secret_file" in node:
        secret_path = base / _get(node, "cluster_secret_file", str)
        try:
            secret = secret_path.read_text().strip().encode()
        except OSError as exc:
            raise ConfigError(f"cannot read cluster secret {secret_path}: {exc.strerror}") from exc
    else:
        raise ConfigError("set cluster_secret or cluster_secret_file in [node]")
    if len(secret) < 16:
        raise ConfigError("the cluster secret must be at least 16 characters")
    devices_raw = raw.get("devices", [])
    if not isinstance(devices_raw, list) or not devices_raw:
        raise ConfigError("at least one [[devices]] entry is required")
    devices = []
    for entry in devices_raw:
        devices.append(DeviceConfig(_get(entry, "name", str), base / _get(entry, "path", str)))
    store = raw.get("store", {})
    limits = raw.get("timeouts", {})
    repair = raw.get("repair", {})
    gossip = raw.get("gossip", {})
    for table, name, cls in ((limits, "timeouts", Timeouts), (repair, "repair", RepairConfig),
                             (gossip, "gossip", GossipConfig)):
        unknown = set(table) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown keys in [{name}]: {', '.join(sorted(unknown))}")
    s3 = raw.get("s3", {})
    tls = None
    if "tls" in raw:
        tls_raw = raw["tls"]
        tls_host, tls_port = _split_hostport(_get(tls_raw, "listen", str), "tls.listen")
        tls = TlsConfig(tls_host, tls_port, base / _get(tls_raw, "cert_file", str),
                        base / _get(tls_raw, "key_file", str))
    return NodeConfig(
        node_id=_get(node, "id", str),
        listen_host=listen_host,
        listen_port=listen_port,
        advertise_ip=adv_ip,
        advertise_port=adv_port,
        ring_path=base / _get(node, "ring", str),
        cluster_secret=secret,
        devices=tuple(devices),
        peers=tuple(_get(node, "peers", list, [])),
        inline_max_bytes=_get(store, "inline_max_bytes", int, NodeConfig.inline_max_bytes),
        block_size_bytes=_get(store, "block_size_bytes", int, NodeConfig.block_size_bytes),
        blocks_in_flight_per_request=_get(store, "blocks_in_flight_per_request", int,
                                          NodeConfig.blocks_in_flight_per_request),
        blocks_in_flight_total=_get(store, "blocks_in_flight_total", int, NodeConfig.blocks_in_flight_total),
        group_commit_window_ms=_store_window_ms(store),
        s3_domain=_get(s3, "domain", str, None),
        region=_get(s3, "region", str, "us-east-1"),
        swift_region=_get(raw.get("swift", {}), "region", str, NodeConfig.swift_region),
        timeouts=Timeouts(**{k: _get(limits, k, float) for k in limits}),
        tls=tls,
        repair=RepairConfig(**{k: _get(repair, k, type(getattr(RepairConfig, k))) for k in repair}),
        gossip=GossipConfig(**{k: _get(gossip, k, type(getattr(GossipConfig, k))) for k in gossip}),
        stale_upload_age_s=_get(raw.get("jobs", {}), "stale_upload_age_s", float, NodeConfig.stale_upload_age_s),
        stale_upload_interval_s=_get(raw.get("jobs", {}), "stale_upload_interval_s", float,
                                     NodeConfig.stale_upload_interval_s),
        object_expirer_interval_s=_get(raw.get("jobs", {}), "object_expirer_interval_s", float,
                                       NodeConfig.object_expirer_interval_s),
        lifecycle_interval_s=_get(raw.get("jobs", {}), "lifecycle_interval_s", float, NodeConfig.lifecycle_interval_s),
        config_path=config_path,
    )
