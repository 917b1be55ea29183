"""`edgestore repair [--now]` and `edgestore scrub [--now]`: see the background repair
passes, or run one on every node at once and wait for its summary."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from edgestore.cli.connect import ClusterTarget, add_cluster_options, admin_request, resolve

POLL_S = 2.0
PASS_TIMEOUT_S = 3600.0

# job name, status key, and the counters its summary adds up
JOBS = {
    "repair": ("anti-entropy", "repair", ("partitions_checked", "out_of_sync", "records_sent", "blocks_sent",
                                          "refs_sent", "bytes_sent", "partitions_dropped", "errors")),
    "scrub": ("scrub", "scrub", ("checked", "bytes_checked", "quarantined", "repaired", "errors")),
    "gc": ("gc", "gc", ("tombstones_reclaimed", "checked", "collected", "in_use", "deferred", "errors")),
}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for command, helptext in (("repair", "anti-entropy: bring every partition back to full replication"),
                              ("scrub", "re-read every block and inline object and check its checksum"),
                              ("gc", "delete blocks no object uses and tombstones past the reclaim age")):
        p = sub.add_parser(command, help=helptext)
        p.add_argument("--now", action="store_true", help="run a pass on every node now and wait for it")
        if command == "gc":
            p.add_argument("--grace", type=float, metavar="SECONDS",
                           help="with --now: collect what was freed longer ago than this (default: the config's)")
            p.add_argument("--reclaim-age", type=float, metavar="SECONDS",
                           help="with --now: reclaim tombstones older than this (default: the config's)")
        add_cluster_options(p)
        p.set_defaults(func=run, job_command=command)


def run(args: argparse.Namespace) -> int:
    job, key, counters = JOBS[args.job_command]
    target = resolve(args)
    if not args.now:
        for node in admin_request(target, "GET", "/_admin/status")["nodes"]:
            print(_line(node, key, counters))
        return 0
    outcome: dict[str, Any] = {}
    options = {name: value for name, value in (("grace_s", getattr(args, "grace", None)),
                                               ("reclaim_age_s", getattr(args, "reclaim_age", None)))
               if value is not None}

    def call() -> None:
        try:
            outcome["answer"] = admin_request(target, "POST", f"/_admin/cluster/jobs/{job}/run", options,
                                              timeout_s=PASS_TIMEOUT_S)
        except Exception as exc:  # handed to the main thread, which reports it
            outcome["error"] = exc

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    started = time.monotonic()
    while worker.is_alive() and time.monotonic() - started < PASS_TIMEOUT_S:
        worker.join(POLL_S)
        if worker.is_alive():
            _progress(target, key, started)
    if "error" in outcome:
        raise outcome["error"]
    totals = dict.fromkeys(counters, 0)
    for node in outcome["answer"]["nodes"]:
        if node.get("up") is False:
            print(f"{node['url']}: DOWN ({node.get('error')})")
            continue
        result = node["result"]
        for name in counters:
            totals[name] += int(result.get(name, 0))
    print(f"{args.job_command} done in {time.monotonic() - started:.1f} s: "
          + ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in totals.items()))
    return 0


def _progress(target: ClusterTarget, key: str, started: float) -> None:
    try:
        nodes = admin_request(target, "GET", "/_admin/status", timeout_s=10)["nodes"]
    except Exception:  # progress is best effort; the pass itself goes on
        return
    parts = []
    for node in nodes:
        state = node.get(key) or {}
        if state.get("running"):
            done = state.get("partitions_checked", state.get("checked", 0))
            total = state.get("partitions_total", state.get("total", "?"))
            parts.append(f"{node.get('node', node.get('url'))}: {done}/{total}")
    print(f"[{time.monotonic() - started:5.0f} s] " + ("  ".join(parts) or "finishing"), flush=True)


def _line(node: dict[str, Any], key: str, counters: tuple[str, ...]) -> str:
    if not node.get("up"):
        return f"{node.get('url')}: DOWN"
    state = node.get(key) or {}
    return (f"{node['url']}: {state.get('passes', 0)} passes"
            + (" (running)" if state.get("running") else "") + "; last: "
            + ", ".join(f"{name.replace('_', ' ')} {state.get(name, 0)}" for name in counters))
