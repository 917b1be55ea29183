"""`edgestore serve --config node.toml`: run one node in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging

from edgestore.cli import CliError
from edgestore.cluster.join import join_cluster
from edgestore.config import load_config
from edgestore.errors import ConfigError, DeviceInUse
from edgestore.malloc import limit_malloc_arenas
from edgestore.node import run_node
from edgestore.ring import RingError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run one node from its TOML config file")
    p.add_argument("--config", required=True, help="the node's TOML file (see deploy/node.example.toml)")
    p.add_argument("--join", metavar="URL", default=None,
                   help="a node of a running cluster: fetch its current ring before serving (a new node)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        if args.join:
            config = join_cluster(config, args.join)
        limit_malloc_arenas()
        asyncio.run(run_node(config))
    except (ConfigError, DeviceInUse) as exc:
        raise CliError(str(exc)) from exc
    except FileNotFoundError as exc:
        raise CliError(f"{exc.filename}: no such file (a new node gets the ring with --join URL)") from exc
    except RingError as exc:
        raise CliError(f"the ring file is unusable: {exc}") from exc
    return 0
