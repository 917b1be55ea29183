"""`edgestore volume-plugin`: the Docker volume plugin (volumes are buckets, mounted with
`edgestore mount` when a container needs them)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from edgestore.cli import CliError
from edgestore.cli.mount import _cluster_file

DEFAULT_SOCKET = Path("/run/docker/plugins/edgestore.sock")  # where dockerd finds a driver named edgestore
DEFAULT_STATE_DIR = Path("/var/lib/edgestore/volumes")
DEFAULT_CACHE_DIR = Path("/var/cache/edgestore/volumes")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("volume-plugin", help="serve the Docker volume plugin protocol (volumes are buckets)")
    p.add_argument("--socket", type=Path, default=DEFAULT_SOCKET,
                   help=f"the unix socket dockerd talks to (default {DEFAULT_SOCKET}: a driver named edgestore)")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help=f"volume definitions and mountpoints NAME/_data (default {DEFAULT_STATE_DIR})")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                   help=f"each volume's mount cache goes in a directory here (default {DEFAULT_CACHE_DIR})")
    p.add_argument("--cluster", type=Path, default=None,
                   help="the cluster.json of `edgestore up`: endpoint and keys for volumes that give none")
    p.add_argument("--endpoint", help="S3 endpoint for volumes that give none (instead of --cluster)")
    p.add_argument("--access-key", help="with --endpoint (or AWS_ACCESS_KEY_ID)")
    p.add_argument("--secret-key", help="with --endpoint (or AWS_SECRET_ACCESS_KEY)")
    p.add_argument("--region", default=None)
    p.add_argument("--ca-file", help="CA certificate(s) for an https endpoint")
    p.add_argument("--cache-size", help="every volume's mount cache size unless it gives one (e.g. 512M)")
    p.add_argument("--ttl", help="seconds attributes and listings are cached in every mount")
    p.add_argument("--libfuse", choices=("auto", "3", "2"),
                   help="the libfuse every mount uses unless its volume says (default auto: 3 if installed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgestore.fuse.volume_driver import Backend, VolumeDriver
    from edgestore.fuse.volume_plugin import serve
    from edgestore.fuse.volumes import VolumeError, VolumeStore

    # Without --endpoint, the cluster file is used if there is one; volumes may bring their own.
    info = {} if args.endpoint else (_cluster_file(args.cluster, required=False) or {})
    backend = Backend(
        endpoint=(args.endpoint or info.get("s3_endpoint") or "").rstrip("/") or None,
        access_key=args.access_key or os.environ.get("AWS_ACCESS_KEY_ID") or info.get("access_key"),
        secret_key=args.secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY") or info.get("secret_key"),
        region=args.region or info.get("region"),
        ca_file=args.ca_file,
        cache_dir=args.cache_dir.resolve(),
        mount_options={k: v for k, v in (("cache-size", args.cache_size), ("ttl", args.ttl),
                                         ("libfuse", args.libfuse)) if v},
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s edgestore-volume-plugin %(levelname)s %(message)s"))
    root = logging.getLogger("edgestore.volumes")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    driver = VolumeDriver(VolumeStore(args.state_dir.resolve()), backend)
    try:
        asyncio.run(serve(driver, args.socket.resolve()))
    except VolumeError as exc:
        raise CliError(str(exc)) from None
    return 0
