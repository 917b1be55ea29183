"""The `edgestore` command: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import importlib
import sys

from edgestore.cli import CliError

# Each module defines add_parser(subparsers), which registers its subcommand and sets
# `func` (args -> exit code) as the parser default.
# repair also registers scrub and gc; mount registers umount; volume registers volume-plugin.
SUBCOMMANDS = ["up", "serve", "ring", "user", "status", "repair", "bench", "cluster", "mount", "volume"]


# Commands registered by a module of another name.
MODULE_OF = {"umount": "mount", "scrub": "repair", "gc": "repair", "volume-plugin": "volume", "locate": "status"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``command``, of just the module that registers it:
    the mount daemon, forked from this process, then does not hold the node's and the
    benchmarks' imports (aiohttp and the rest: some 20 MiB resident)."""
    parser = argparse.ArgumentParser(prog="edgestore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    module = MODULE_OF.get(command or "", command)
    for name in [module] if module in SUBCOMMANDS else SUBCOMMANDS:
        importlib.import_module(f"edgestore.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"edgestore {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
