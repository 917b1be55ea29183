"""`edgestore ring ...`: build and inspect the ring file offline.

A thin layer over `edgestore.ring`: each subcommand loads the file, calls one builder or
ring method, saves atomically and prints. Ring errors become `CliError` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from edgestore.cli import CliError
from edgestore.ring import (
    Device,
    Ring,
    RingBuilder,
    RingError,
    load_builder,
    load_ring,
    save_builder,
)

__all__ = ["add_parser", "add_device_options", "device_spec"]

Handler = Callable[[argparse.Namespace], int]


def _guarded(handler: Handler) -> Handler:
    """Turn the errors a user can cause into `CliError`."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except FileNotFoundError as exc:
            raise CliError(f"{exc.filename}: no such file") from exc
        except OSError as exc:
            raise CliError(f"{exc.filename or args.file}: {exc.strerror or exc}") from exc
        except RingError as exc:
            raise CliError(str(exc)) from exc

    return run


def _print_json(value: Any) -> None:
    print(json.dumps(value, sort_keys=True))


def _device_json(dev: Device) -> dict[str, Any]:
    return {"id": dev.id, "region": dev.region, "zone": dev.zone, "ip": dev.ip,
            "port": dev.port, "device": dev.device}


# -- handlers -------------------------------------------------------------------------------


def _create(args: argparse.Namespace) -> int:
    if os.path.lexists(args.file):
        raise CliError(f"{args.file} already exists; not overwriting it")
    builder = RingBuilder(args.part_power, args.replicas, args.min_part_hours)
    save_builder(builder, args.file)
    print(f"created {args.file}: part power {builder.part_power} "
          f"({builder.partitions} partitions), {builder.replicas} replicas, "
          f"min_part_hours {builder.min_part_hours}")
    return 0


def _add(args: argparse.Namespace) -> int:
    builder = load_builder(args.file)
    dev_id = builder.add_device(**device_spec(args))
    save_builder(builder, args.file)
    print(dev_id)
    return 0


def _set_weight(args: argparse.Namespace) -> int:
    builder = load_builder(args.file)
    builder.set_weight(args.id, args.weight)
    save_builder(builder, args.file)
    print(f"device {args.id} weight {builder.device(args.id).weight:g}; "
          "rebalance to apply")
    return 0


def _remove(args: argparse.Namespace) -> int:
    builder = load_builder(args.file)
    builder.remove_device(args.id)
    save_builder(builder, args.file)
    print(f"device {args.id} removed; the next rebalance drains it")
    return 0


def _set_min_part_hours(args: argparse.Namespace) -> int:
    builder = load_builder(args.file)
    builder.set_min_part_hours(args.hours)
    save_builder(builder, args.file)
    print(f"min_part_hours {builder.min_part_hours}")
    return 0


def _pretend_min_part_hours_passed(args: argparse.Namespace) -> int:
    builder = load_builder(args.file)
    builder.pretend_min_part_hours_passed()
    save_builder(builder, args.file)
    print("every partition may move at the next rebalance")
    return 0


def _rebalance(args: argparse.Namespace) -> int:
    builder = load_builder(args.file)
    result = builder.rebalance(seed=args.seed)
    save_builder(builder, args.file)
    if args.json:
        _print_json({"moved": result.moved, "balance": result.balance,
                     "version": result.version})
    else:
        print(f"moved {result.moved} partition-replicas, balance {result.balance:.2f}%, "
              f"version {result.version}")
    return 0


def _show(args: argparse.Namespace) -> int:
    builder = load_builder(args.file)
    parts = builder.parts_by_device()
    shares = builder.weight_shares()
    if args.json:
        out: dict[str, Any] = builder.describe()
        if args.parts:
            out["assignments"] = builder.assignments()
        _print_json(out)
        return 0
    removed = builder.removed_device_ids
    print(f"{args.file}: part power {builder.part_power} ({builder.partitions} partitions), "
          f"{builder.replicas} replicas, min_part_hours {builder.min_part_hours}, "
          f"version {builder.version}")
    state = f"balance {builder.balance:.2f}%" if builder.rebalanced else "not rebalanced"
    print(f"{state}, {len(builder.devices)} devices"
          + (f" ({len(removed)} removed, drained at the next rebalance)" if removed else ""))
    header = ("id", "region", "zone", "ip", "port", "device", "weight", "parts", "balance")
    rows = []
    for dev in builder.devices:
        share = shares.get(dev.id)
        dev_balance = f"{100.0 * (parts[dev.id] / share - 1.0):.2f}" if share else "-"
        rows.append((str(dev.id), str(dev.region), str(dev.zone), dev.ip, str(dev.port),
                     dev.device, f"{dev.weight:g}", str(parts[dev.id]),
                     "removed" if dev.id in removed else dev_balance))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if args.parts:
        for part, devs in enumerate(builder.assignments()):
            print(f"partition {part}: {' '.join(map(str, devs))}")
    return 0


def _lookup(args: argparse.Namespace) -> int:
    ring: Ring = load_ring(args.file)
    try:
        part = ring.partition(args.account, args.container, args.object)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    primaries = ring.primaries(part)
    handoffs = list(ring.handoffs(part))
    if args.json:
        _print_json({"partition": part,
                     "primaries": [_device_json(dev) for dev in primaries],
                     "handoffs": [_device_json(dev) for dev in handoffs]})
        return 0
    print(f"partition {part} (ring version {ring.version})")
    for kind, devs in (("primary", primaries), ("handoff", handoffs)):
        for dev in devs:
            print(f"{kind:8} {dev.id:>5}  region {dev.region} zone {dev.zone}  {dev.address}")
    return 0


# -- parser ---------------------------------------------------------------------------------


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def add_device_options(p: argparse.ArgumentParser) -> None:
    """The options that describe a device (`ring add`, `cluster add-device`)."""
    p.add_argument("--region", type=int, required=True, metavar="N")
    p.add_argument("--zone", type=int, required=True, metavar="N")
    p.add_argument("--ip", required=True, metavar="IP")
    p.add_argument("--port", type=int, required=True, metavar="PORT")
    p.add_argument("--device", required=True, metavar="NAME")
    p.add_argument("--weight", type=float, required=True, metavar="W")


def device_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The device those options describe, as `RingBuilder.add_device` takes it."""
    return {"region": args.region, "zone": args.zone, "ip": args.ip, "port": args.port,
            "device": args.device, "weight": args.weight}


def add_parser(subparsers: Any) -> None:
    """Register `ring` and its subcommands on the main parser's subparsers."""
    ring = subparsers.add_parser("ring", help="build and inspect the ring file",
                                 description=__doc__)
    sub = ring.add_subparsers(dest="ring_command", required=True, metavar="SUBCOMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text,
                                                         description=help_text)
        parser.add_argument("file", metavar="FILE", help="the ring file")
        parser.set_defaults(func=_guarded(handler))
        return parser

    p = command("create", _create, "create a new, empty ring file (never overwrites)")
    p.add_argument("--part-power", type=int, required=True, metavar="P",
                   help="2**P partitions")
    p.add_argument("--replicas", type=int, required=True, metavar="R")
    p.add_argument("--min-part-hours", type=_non_negative_int, default=1, metavar="H",
                   help="hours before a moved partition may move again (default 1)")

    add_device_options(command("add", _add, "add a device; prints its id"))

    p = command("set-weight", _set_weight, "change a device's weight")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("weight", type=float, metavar="W")

    p = command("remove", _remove, "remove a device (drained at the next rebalance)")
    p.add_argument("id", type=int, metavar="ID")

    p = command("set-min-part-hours", _set_min_part_hours,
                "set hours before a moved partition may move again")
    p.add_argument("hours", type=_non_negative_int, metavar="H")

    command("pretend-min-part-hours-passed", _pretend_min_part_hours_passed,
            "let every partition move at the next rebalance")

    p = command("rebalance", _rebalance, "reassign partitions to devices")
    p.add_argument("--json", action="store_true", help="print moved, balance, version as JSON")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="seed for a reproducible result")

    p = command("show", _show, "show devices, balance and (with --parts) the assignment")
    p.add_argument("--json", action="store_true")
    p.add_argument("--parts", action="store_true", help="include each partition's devices")

    p = command("lookup", _lookup, "where an account, container or object is stored")
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("container", nargs="?", default=None, metavar="CONTAINER")
    p.add_argument("object", nargs="?", default=None, metavar="OBJECT")
    p.add_argument("--json", action="store_true")
