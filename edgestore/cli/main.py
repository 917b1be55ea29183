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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgestore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"edgestore.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"edgestore {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
