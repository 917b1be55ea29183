"""`edgestore cluster ...`: change the ring of a running cluster through any node.

    add-device     add a device (the node serving it may have joined with `serve --join`)
    remove-device  remove a device: the next rebalance drains it
    set-weight     change a device's weight (0 drains it but keeps it in the ring)
    rebalance      reassign partitions; --wait follows the data moving until every node
                   serves the new ring and every partition is fully replicated again
    show           the ring the cluster serves with

Every change makes a new ring version on the node asked, which hands it to every peer at
once (and gossip to any that missed it); anti-entropy then moves the data.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from edgestore.cli import CliError
from edgestore.cli.connect import ClusterTarget, add_cluster_options, admin_request, resolve
from edgestore.cli.ring import add_device_options, device_spec
from edgestore.cluster.ringstate import device_url_for

__all__ = ["add_parser", "backlog", "wait_for_convergence"]

POLL_S = 1.0
DEFAULT_WAIT_S = 1800.0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cluster = sub.add_parser("cluster", help="change the ring of a running cluster", description=__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = cluster.add_subparsers(dest="cluster_command", required=True, metavar="SUBCOMMAND")

    def command(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text)
        add_cluster_options(p)
        p.add_argument("--json", action="store_true", help="print the node's answer as JSON")
        p.set_defaults(func=handler)
        return p

    add_device_options(command("add-device", _add_device, "add a device to the ring; prints its id"))
    p = command("remove-device", _remove_device, "remove a device (drained at the next rebalance)")
    p.add_argument("id", type=int, metavar="ID")
    p = command("set-weight", _set_weight, "change a device's weight (0 drains it at the next rebalance)")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("weight", type=float, metavar="W")
    p = command("rebalance", _rebalance, "reassign partitions; the cluster then moves the data")
    p.add_argument("--seed", type=int, default=None, metavar="N", help="seed for a reproducible result")
    p.add_argument("--pretend-min-part-hours-passed", action="store_true",
                   help="let every partition move now (only once replication has caught up)")
    p.add_argument("--wait", action="store_true",
                   help="follow the data moving until every node serves the new ring and nothing is out of sync")
    p.add_argument("--timeout", type=float, default=DEFAULT_WAIT_S, metavar="SECONDS",
                   help=f"give up waiting after this long (default {DEFAULT_WAIT_S:.0f})")
    command("show", _show, "the ring the cluster serves with: version, devices, weights, partitions")


def _emit(args: argparse.Namespace, answer: dict[str, Any], text: Callable[[dict[str, Any]], str]) -> None:
    """The node's answer as JSON with --json, else as `text` puts it for people."""
    print(json.dumps(answer, indent=2) if args.json else text(answer))


def _report(args: argparse.Namespace, answer: dict[str, Any], what: str) -> None:
    def text(answer: dict[str, Any]) -> str:
        peers = answer.get("peers", {})
        have = sum(1 for version in peers.values() if version >= answer["version"])
        unreachable = answer["unreachable"]
        return (f"{what}: ring version {answer['version']}, served by {have + 1} of {len(peers) + 1 + unreachable} "
                "nodes" + (f" ({unreachable} unreachable; gossip brings it to them)" if unreachable else ""))
    _emit(args, answer, text)


def _add_device(args: argparse.Namespace) -> int:
    answer = admin_request(resolve(args), "POST", "/_admin/ring/devices", device_spec(args))
    _report(args, answer, f"device {answer['id']} added")
    return 0


def _remove_device(args: argparse.Namespace) -> int:
    answer = admin_request(resolve(args), "DELETE", f"/_admin/ring/devices/{args.id}")
    _report(args, answer, f"device {args.id} removed (the next rebalance drains it)")
    return 0


def _set_weight(args: argparse.Namespace) -> int:
    answer = admin_request(resolve(args), "POST", f"/_admin/ring/devices/{args.id}/weight", {"weight": args.weight})
    _report(args, answer, f"device {args.id} weight {args.weight:g}")
    return 0


def _rebalance(args: argparse.Namespace) -> int:
    target = resolve(args)
    answer = admin_request(target, "POST", "/_admin/ring/rebalance",
                           {"seed": args.seed, "pretend_min_part_hours_passed": args.pretend_min_part_hours_passed})
    _report(args, answer, f"moved {answer['moved']} partition-replicas, balance {answer['balance']:.2f}%")
    if args.wait:
        wait_for_convergence(target, answer["version"], args.timeout, quiet=args.json)
    return 0


def _show(args: argparse.Namespace) -> int:
    _emit(args, admin_request(resolve(args), "GET", "/_admin/ring"), _ring_text)
    return 0


def _ring_text(ring: dict[str, Any]) -> str:
    lines = [f"ring version {ring['version']} ({ring['checksum']}): {ring['partitions']} partitions, "
             f"{ring['replicas']} replicas, balance {ring['balance']:.2f}%, min_part_hours {ring['min_part_hours']}"]
    removed = set(ring["removed"])
    for dev in ring["devices"]:
        host = f"[{dev['ip']}]" if ":" in dev["ip"] else dev["ip"]
        lines.append(f"  {dev['id']:>4}  region {dev['region']} zone {dev['zone']}  {host}:{dev['port']}/"
                     f"{dev['device']}  weight {dev['weight']:g}  {dev['parts']} partition-replicas"
                     + ("  REMOVED (drained at the next rebalance)" if dev["id"] in removed else ""))
    return "\n".join(lines)


def backlog(nodes: list[dict[str, Any]], version: int, ring_urls: set[str]) -> tuple[list[str], int, int, int]:
    """Nodes not yet settled on `version`, and the repair backlog and bytes moved so far.
    A node that is down blocks only if the ring names it: a node outside the ring holds
    nothing that is not also on the ring's devices (a drain never drops a copy before
    the new primaries took it)."""
    unsettled, out_of_sync, handoff, moved = [], 0, 0, 0
    for node in nodes:
        name = node.get("node", node.get("url"))
        if not node.get("up"):
            if node.get("url") in ring_urls:
                unsettled.append(f"{name} down")
            continue
        repair = node.get("repair", {})
        out_of_sync += int(repair.get("out_of_sync", 0))
        handoff += int(repair.get("handoff_partitions", 0))
        moved += int(repair.get("bytes_sent", 0))
        if node.get("ring_version", 0) < version:
            unsettled.append(f"{name} on v{node.get('ring_version')}")
        elif repair.get("ring_version", 0) < version or repair.get("running") or repair.get("unreachable_peers"):
            unsettled.append(f"{name} repairing")   # a pass that could not compare with every peer proves nothing
    return unsettled, out_of_sync, handoff, moved


def wait_for_convergence(target: ClusterTarget, version: int, timeout_s: float, quiet: bool = False) -> None:
    """Poll status until every node serves ring `version` (or newer), has finished a repair
    pass with it, and no partition is out of sync or held by a handoff."""
    started = time.monotonic()
    line = ""
    ring_urls: set[str] | None = None
    while time.monotonic() - started < timeout_s:
        try:
            if ring_urls is None:
                devices = admin_request(target, "GET", "/_admin/ring")["devices"]
                ring_urls = {device_url_for(d["ip"], d["port"]) for d in devices}
            nodes = admin_request(target, "GET", "/_admin/status", timeout_s=30)["nodes"]
        except CliError as exc:
            line = f"status unavailable: {exc}"
        else:
            unsettled, out_of_sync, handoff, moved = backlog(nodes, version, ring_urls)
            if not unsettled and out_of_sync == 0 and handoff == 0:
                if not quiet:
                    print(f"[{time.monotonic() - started:5.0f} s] converged: {len(nodes)} nodes on ring "
                          f"version {version} or newer, every partition fully replicated", flush=True)
                return
            line = (f"{len(nodes) - len(unsettled)}/{len(nodes)} nodes settled on v{version}; {out_of_sync} "
                    f"partition replicas out of sync, {handoff} handoff partitions; {moved} bytes sent in the last "
                    f"passes" + (f" ({', '.join(unsettled)})" if unsettled else ""))
        if not quiet:
            print(f"[{time.monotonic() - started:5.0f} s] {line}", flush=True)
        time.sleep(POLL_S)
    raise CliError(f"not converged after {timeout_s:.0f} s: {line}")
