"""`edgestore status [--json]` and `edgestore locate BUCKET KEY [--json]`: what the
cluster looks like, and where one object's replicas and blocks are."""

from __future__ import annotations

import argparse
import json
import urllib.parse
from typing import Any

from edgestore.cli.connect import add_cluster_options, admin_request, resolve


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("status", help="every node: up/down, ring version, partitions, repair backlog, disks")
    p.add_argument("--json", action="store_true", help="print the full status as JSON")
    add_cluster_options(p)
    p.set_defaults(func=show_status)
    loc = sub.add_parser("locate", help="the devices holding each replica of an object and of its blocks")
    loc.add_argument("bucket")
    loc.add_argument("key")
    loc.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_cluster_options(loc)
    loc.set_defaults(func=locate)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def show_status(args: argparse.Namespace) -> int:
    status = admin_request(resolve(args), "GET", "/_admin/status")
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"ring version {status['ring_version']}: {status['partitions']} partitions, "
          f"{status['replicas']} replicas")
    for node in status["nodes"]:
        print(format_node(node))
    return 0


def format_node(node: dict[str, Any]) -> str:
    if not node.get("up"):
        return f"{node.get('url')}  DOWN  ({node.get('error', 'unreachable')})"
    repair = node.get("repair", {})
    lines = [f"{node['url']}  up  node {node['node']}  ring v{node['ring_version']}  "
             f"repair: {repair.get('out_of_sync', 0)} out of sync, {repair.get('handoff_partitions', 0)} "
             f"handoff partitions, {repair.get('passes', 0)} passes"
             + (" (running)" if repair.get("running") else "")]
    scrub = node.get("scrub")
    if scrub:
        lines.append(f"    scrub: {scrub.get('checked', 0)} checked, {scrub.get('quarantined', 0)} quarantined, "
                     f"{scrub.get('passes', 0)} passes" + (" (running)" if scrub.get("running") else ""))
    gc = node.get("gc")
    if gc and gc.get("passes"):
        lines.append(f"    gc: {gc.get('collected', 0)} blocks collected, {gc.get('tombstones_reclaimed', 0)} "
                     f"tombstones reclaimed in the last pass")
    for dev in node.get("devices", []):
        state = "" if dev.get("in_ring") else "  UNASSIGNED"
        lines.append(f"    {dev['name']}: {dev['partitions_held']} partitions held "
                     f"({dev['primary_partitions']} primary), disk {_size(dev['disk_used_bytes'])} used of "
                     f"{_size(dev['disk_total_bytes'])}, {dev['quarantined']} quarantined, "
                     f"{dev['lost_blocks']} lost blocks{state}")
    return "\n".join(lines)


def locate(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"bucket": args.bucket, "key": args.key})
    answer = admin_request(resolve(args), "GET", f"/_admin/locate?{query}")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"{answer['bucket']}/{answer['key']} (account {answer['account']}), partition {answer['partition']}, "
          + ("stored inline" if answer["inline"] else f"{len(answer['blocks'])} blocks"))
    for replica in answer["replicas"]:
        print("  record  " + _copy(replica))
    for block in answer["blocks"]:
        print(f"  block {block['index']} {block['block'][:16]}… ({_size(block['size'])})")
        for replica in block["replicas"]:
            print("    " + _copy(replica))
    return 0


def _copy(entry: dict[str, Any]) -> str:
    if not entry.get("reachable", True):
        state = "unreachable"
    elif not entry["present"]:
        state = "MISSING"
    elif not entry["intact"]:
        state = "CORRUPT"
    elif entry.get("current") is False:
        state = "stale"
    else:
        state = "ok"
    return f"{entry['node']} {entry['device']}: {state}"
