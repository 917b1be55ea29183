#!/usr/bin/env python3
"""edgestore and OpenStack Swift side by side, on this machine, in one run.

Starts OpenStack Swift from ../shared/tools/swift-baseline (4 storage nodes, 3 replicas,
part power 10, every background daemon) and a 4-node `edgestore up`, then runs the same
`edgestore bench` scenarios against both — the same client, concurrency and API (the Swift
API on both, then S3 on both: Swift serves it through its s3api middleware) — alternating
between the two systems, a few rounds of each scenario, and measures each system's processes and
PSS idle and under load (from /proc). Prints the tables and writes them, with the machine
and the commands, to docs/performance.md.

    sudo .venv/bin/python benchmarks/side_by_side.py            # root: Swift loop-mounts XFS
    .venv/bin/python benchmarks/side_by_side.py --small-count 300 --rounds 1 --no-write   # a quick look
    .venv/bin/python benchmarks/side_by_side.py --scenarios large --no-write      # one scenario
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgestore.bench.runner import PhaseResult  # noqa: E402
from edgestore.bench.scenarios import SCENARIOS, Settings, fill_bucket, list_names  # noqa: E402
from edgestore.bench.targets import S3Target, SwiftTarget, Target  # noqa: E402

SWIFT_TOOLS = ROOT.parent / "shared" / "tools" / "swift-baseline"
SWIFT_USER, SWIFT_KEY = "test:tester", "testing"        # the baseline's tempauth user
LIST_BUCKET = "side-by-side-list"
SCENARIO_ORDER = ("list", "small", "large", "mixed")
T = TypeVar("T")


# -- the two systems ---------------------------------------------------------------

@dataclass
class System:
    name: str
    swift: Callable[[], Target]
    s3: Callable[[], Target]
    pids: Callable[[], list[int]]


def start_swift(base: Path, port: int) -> System:
    env = {**os.environ, "SWIFT_BASE": str(base), "SWIFT_PROXY_PORT": str(port)}
    done = subprocess.run(["bash", str(SWIFT_TOOLS / "start.sh")], env=env, capture_output=True, text=True,
                          timeout=1800)
    if done.returncode != 0:
        sys.exit(f"swift-baseline start.sh failed:\n{done.stderr[-3000:]}")
    url = f"http://127.0.0.1:{port}"
    pidfile = base / "run" / "pids"

    def pids() -> list[int]:
        roots = [int(line.split()[0]) for line in pidfile.read_text().splitlines() if line.strip()]
        return process_tree(roots)
    return System("OpenStack Swift", lambda: SwiftTarget(f"{url}/auth/v1.0", SWIFT_USER, SWIFT_KEY),
                  lambda: S3Target(url, SWIFT_USER, SWIFT_KEY), pids)


def start_edgestore(data: Path, port: int) -> tuple[System, subprocess.Popen[bytes]]:
    data.mkdir(parents=True, exist_ok=True)
    log = open(data / "side-by-side-up.log", "ab")
    up = subprocess.Popen([sys.executable, "-m", "edgestore", "up", "--nodes", "4", "--data", str(data),
                           "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    info_path = data / "cluster.json"
    while time.monotonic() < deadline:
        if info_path.exists() and all(_healthy(n["health_url"]) for n in json.loads(info_path.read_text())["nodes"]):
            break
        time.sleep(0.5)
    else:
        sys.exit("edgestore up did not come up; see " + str(data / "side-by-side-up.log"))
    info = json.loads(info_path.read_text())
    url = info["s3_endpoint"]

    def pids() -> list[int]:
        return process_tree([up.pid])
    return System("edgestore", lambda: SwiftTarget(f"{url}/auth/v1.0", "default:admin", info["secret_key"]),
                  lambda: S3Target(url, info["access_key"], info["secret_key"]), pids), up


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


# -- memory from /proc ---------------------------------------------------------------

def process_tree(roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen and Path(f"/proc/{pid}").exists():
            seen.add(pid)
            todo += children.get(pid, [])
    return sorted(seen)


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes, in seconds."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue   # gone meanwhile
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def settle(systems: tuple[System, ...], least_s: float, most_s: float, quiet_cores: float = 0.15,
           window_s: float = 2.0) -> float:
    """Wait `least_s`, then until both systems' processes together use under `quiet_cores`
    of CPU over a window (a fill leaves Swift's updaters and replicators busy for minutes,
    which slows whichever system is measured then), at most `most_s` in all. Returns the
    seconds waited."""
    started = time.monotonic()
    time.sleep(least_s)
    while time.monotonic() - started < most_s:
        pids = [pid for system in systems for pid in system.pids()]
        before = cpu_seconds(pids)
        time.sleep(window_s)
        if (cpu_seconds(pids) - before) / window_s < quiet_cores:
            break
    return time.monotonic() - started


def memory(pids: list[int]) -> dict[str, float]:
    """Processes, total PSS and RSS (MiB), and the largest single RSS."""
    pss = rss = biggest = 0
    for pid in pids:
        try:
            fields = {line.split(":")[0]: int(line.split()[1])
                      for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]}
        except (OSError, ValueError, IndexError):
            continue
        pss += fields.get("Pss", 0)
        rss += fields.get("Rss", 0)
        biggest = max(biggest, fields.get("Rss", 0))
    return {"processes": len(pids), "pss_mib": round(pss / 1024, 1), "rss_mib": round(rss / 1024, 1),
            "max_process_rss_mib": round(biggest / 1024, 1)}


class PeakSampler:
    """Samples a system's memory every half second while a scenario runs."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            now = memory(self.system.pids())
            for key, value in now.items():
                self.peak[key] = max(value, self.peak.get(key, 0))


# -- running -------------------------------------------------------------------------

async def run_scenario(target: Target, scenario: str, settings: Settings) -> list[PhaseResult]:
    await target.open(settings.concurrency)
    try:
        await target.create_bucket(settings.bucket)
        results = await SCENARIOS[scenario](target, settings)
        await target.delete_bucket(settings.bucket)
        return results
    finally:
        await target.close()


async def prefill(system: System, settings: Settings) -> float:
    """Create the listing bucket through S3 and fill it through the Swift API. Swift's s3api
    answers AccessDenied to every S3 request on a container made through the Swift API (it
    has no S3 owner), so a bucket made the other way round could be listed only one way."""
    s3, swift = system.s3(), system.swift()
    await s3.open(1)
    try:
        await s3.create_bucket(LIST_BUCKET)
    finally:
        await s3.close()
    await swift.open(settings.concurrency)
    try:
        started = time.monotonic()
        await fill_bucket(swift, LIST_BUCKET, list_names(settings.list_objects), settings)
        return time.monotonic() - started
    finally:
        await swift.close()


# What follows this line in the report file was measured by other means (write
# amplification, by hand): a new run replaces the tables above it and keeps the rest.
KEEP_MARKER = "<!-- measured by other scripts: side_by_side.py keeps what follows -->"


def kept_sections(out: Path) -> str:
    if not out.exists():
        return ""
    text = out.read_text()
    at = text.find(KEEP_MARKER)
    return "\n" + text[at:] if at >= 0 else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swift-base", type=Path, default=Path("/tmp/swift-baseline"))
    parser.add_argument("--swift-port", type=int, default=8180)
    parser.add_argument("--edgestore-data", type=Path, default=Path("/tmp/edgestore-side-by-side"))
    parser.add_argument("--edgestore-port", type=int, default=8280)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--large-count", type=int, default=24,
                        help="64 MiB objects per large run: three rounds at concurrency 8, not one "
                             "(one round of eight measured mostly its start and its slowest PUT)")
    parser.add_argument("--mixed-duration", type=float, default=20.0)
    parser.add_argument("--list-objects", type=int, default=10_000)
    parser.add_argument("--list-repeats", type=int, default=10,
                        help="full listings per round; delimited ones ten times as many (one delimited listing "
                             "takes a few ms: 50 of them were one scheduler hiccup from a different figure)")
    parser.add_argument("--apis", default="swift,s3")
    parser.add_argument("--scenarios", default=",".join(SCENARIO_ORDER),
                        help=f"which of {','.join(SCENARIO_ORDER)} to run, in that order")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each scenario per system, alternating who goes first; the table "
                             "shows each system's median run (the lower middle one for an even count) "
                             "and the spread of the per-round ratios")
    parser.add_argument("--settle-s", type=float, default=10.0,
                        help="pause before each system's run of a scenario (seconds)")
    parser.add_argument("--settle-max-s", type=float, default=180.0,
                        help="after that pause, wait until both systems are quiet (under 0.15 core), "
                             "at most this long in all")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()

    load_before = os.getloadavg()
    ours_is_new = not args.edgestore_data.exists()  # then it is ours to delete at the end
    swift = start_swift(args.swift_base, args.swift_port)
    edgestore, up = start_edgestore(args.edgestore_data, args.edgestore_port)
    try:
        time.sleep(10)   # let both settle before the idle reading
        idle = {s.name: memory(s.pids()) for s in (swift, edgestore)}
        print(f"idle: {json.dumps(idle)}", flush=True)
        base = Settings(bucket="side-by-side", concurrency=args.concurrency, progress=False,
                        list_objects=args.list_objects, list_repeats=args.list_repeats, list_bucket=LIST_BUCKET)
        chosen = [name for name in SCENARIO_ORDER if name in args.scenarios.split(",")]
        if "list" in chosen:
            fills = {s.name: asyncio.run(prefill(s, base)) for s in (edgestore, swift)}
            print(f"list buckets filled: {fills}", flush=True)
        # Listing first: right after the fill and a settle, not behind the mixed run whose
        # writes leave Swift's updaters and replicators busy for a while (the run of
        # 2026-11-27 05:31 listed last, at load 12, and measured that load more than either).
        per_scenario = {"list": {}, "small": dict(count=args.small_count), "large": dict(count=args.large_count),
                        "mixed": dict(duration_s=args.mixed_duration)}
        rows: list[dict[str, Any]] = []
        cpu_rows: list[dict[str, Any]] = []
        peaks: dict[str, dict[str, float]] = {s.name: {} for s in (swift, edgestore)}
        turn = 0
        for api in args.apis.split(","):
            for scenario in chosen:
                rounds: dict[str, list[list[PhaseResult]]] = {swift.name: [], edgestore.name: []}
                cpu: dict[str, list[float]] = {swift.name: [], edgestore.name: []}
                for _ in range(args.rounds):
                    order = (swift, edgestore) if turn % 2 == 0 else (edgestore, swift)   # alternate who goes first
                    turn += 1
                    for system in order:
                        waited = settle((swift, edgestore), args.settle_s, args.settle_max_s)
                        print(f"settled {waited:.0f} s before {api} {scenario} on {system.name}", flush=True)
                        settings = Settings(**{**base.__dict__, "bucket": f"side-{scenario}-{api}",
                                               **per_scenario[scenario]})
                        target = system.swift() if api == "swift" else system.s3()
                        cpu_before = cpu_seconds(system.pids())
                        with PeakSampler(system) as sampler:
                            results = asyncio.run(run_scenario(target, scenario, settings))
                        cpu[system.name].append(cpu_seconds(system.pids()) - cpu_before)
                        rounds[system.name].append(results)
                        for key, value in sampler.peak.items():
                            peaks[system.name][key] = max(value, peaks[system.name].get(key, 0))
                        print(f"{api} {scenario} {system.name}: "
                              + ", ".join(f"{r.phase} {r.row()['ops_per_s']} ops/s" for r in results), flush=True)
                rows += compare(api, rounds[swift.name], rounds[edgestore.name])
                cpu_rows.append({"api": api, "scenario": scenario, "swift": lower_median(cpu[swift.name], float),
                                 "edgestore": lower_median(cpu[edgestore.name], float)})
        report = render(rows, cpu_rows, idle, peaks, load_before, os.getloadavg(), args)
        print(report)
        if not args.no_write:
            args.out.write_text(report + kept_sections(args.out))
            print(f"written to {args.out}")
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(timeout=60)
        if ours_is_new:  # gigabytes of deleted large objects wait out the GC grace in there
            shutil.rmtree(args.edgestore_data, ignore_errors=True)
        # --wipe: the next run starts Swift as empty as edgestore (its venv stays), and no
        # container made by an earlier run's code lingers.
        subprocess.run(["bash", str(SWIFT_TOOLS / "stop.sh"), "--wipe"],
                       env={**os.environ, "SWIFT_BASE": str(args.swift_base)}, capture_output=True, timeout=300)
    return 0


def metric_of(result: PhaseResult) -> str:
    return "mib_per_s" if result.scenario == "large" else "ops_per_s"


def lower_median(values: list[T], key: Callable[[T], float]) -> T:
    """The middle value by `key`; the lower middle one of an even count (a benchmark that
    must beat a baseline should not pick its better half)."""
    return sorted(values, key=key)[(len(values) - 1) // 2]


def median_run(runs: list[PhaseResult]) -> PhaseResult:
    """The middle run by the phase's metric (lower_median)."""
    return lower_median(runs, lambda r: float(str(r.row()[metric_of(r)])))


def compare(api: str, swift: list[list[PhaseResult]], edgestore: list[list[PhaseResult]]) -> list[dict[str, Any]]:
    """One row per phase: each system's median run, their ratio, and the lowest and highest
    ratio of the runs made in the same round."""
    def by_phase(rounds: list[list[PhaseResult]]) -> dict[tuple[str, str], list[PhaseResult]]:
        phases: dict[tuple[str, str], list[PhaseResult]] = {}
        for results in rounds:
            for result in results:
                phases.setdefault((result.scenario, result.phase), []).append(result)
        return phases

    theirs, ours = by_phase(swift), by_phase(edgestore)
    rows = []
    for key, our_runs in ours.items():
        their_runs = theirs.get(key)
        if their_runs is None or key[1] in ("preload", "fill", "all"):
            continue
        metric = metric_of(our_runs[0])
        per_round = [_ratio(float(str(o.row()[metric])), float(str(t.row()[metric])))
                     for o, t in zip(our_runs, their_runs, strict=True)]
        mine, other = median_run(our_runs).row(), median_run(their_runs).row()
        rows.append({"api": api, "scenario": key[0], "phase": key[1], "metric": metric,
                     "swift": other[metric], "edgestore": mine[metric],
                     "ratio": round(_ratio(float(str(mine[metric])), float(str(other[metric]))), 2),
                     "round_ratios": [round(r, 2) for r in per_round],
                     "errors": f"{sum(r.errors for r in their_runs)}/{sum(r.errors for r in our_runs)}",
                     "first_errors": {"OpenStack Swift": _first_error(their_runs),
                                      "edgestore": _first_error(our_runs)}})
    return rows


def _first_error(runs: list[PhaseResult]) -> str | None:
    return next((r.first_error for r in runs if r.first_error), None)


def _ratio(mine: float, baseline: float) -> float:
    return mine / baseline if baseline else float("inf")


def render(rows: list[dict[str, Any]], cpu_rows: list[dict[str, Any]], idle: dict[str, dict[str, float]],
           peaks: dict[str, dict[str, float]],
           load_before: tuple[float, ...], load_after: tuple[float, ...], args: argparse.Namespace) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Performance: edgestore beside OpenStack Swift", "",
        f"Latest run: {when}, on {platform.node()} ({os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}); load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after. Both systems: 4 nodes, 3 replicas, part power 10, on 127.0.0.1; "
        f"the same client (`edgestore bench`), concurrency {args.concurrency}, alternating between the "
        f"systems scenario by scenario, {args.rounds} rounds of each (who goes first alternates); the table "
        "shows each system's median round and the lowest and highest ratio of a single round. The machine "
        "is shared: only ratios measured in one run mean much.", "",
        f"Command: `sudo .venv/bin/python benchmarks/side_by_side.py --apis {args.apis} --scenarios {args.scenarios} "
        f"--rounds {args.rounds} --list-repeats {args.list_repeats}` "
        f"(small {args.small_count} x 4 KiB, large {args.large_count} x 64 MiB, mixed {args.mixed_duration:.0f} s "
        f"of 64 KiB objects, listing {args.list_objects} objects: {args.list_repeats} full and "
        f"{args.list_repeats * 10} delimited listings a round, one at a time).", "",
        "| API | scenario | phase | Swift | edgestore | edgestore / Swift | per round | errors (Swift/edgestore) |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        unit = "MiB/s" if row["metric"] == "mib_per_s" else "ops/s"
        lines.append(f"| {row['api']} | {row['scenario']} | {row['phase']} | {row['swift']} {unit} | "
                     f"{row['edgestore']} {unit} | **{row['ratio']}x** | "
                     f"{min(row['round_ratios'])}–{max(row['round_ratios'])}x | {row['errors']} |")
    failed = [(row, name, error) for row in rows for name, error in row["first_errors"].items() if error]
    if failed:  # a ratio over a phase that failed means little without the reason
        lines += ["", "First error of each phase with errors:", ""]
        lines += [f"- {row['api']} {row['scenario']} {row['phase']}, {name}: `{error}`" for row, name, error in failed]
    lines += ["", "CPU-seconds each system's processes used for one run of a scenario (all its phases, the same "
              "work on both; median round; a process that exits meanwhile is not counted, which can only "
              "flatter Swift, whose replicators come and go):", "",
              "| API | scenario | Swift CPU-s | edgestore CPU-s | edgestore / Swift |", "|---|---|---:|---:|---:|"]
    for row in cpu_rows:
        lines.append(f"| {row['api']} | {row['scenario']} | {row['swift']:.1f} | {row['edgestore']:.1f} | "
                     f"{_ratio(row['edgestore'], row['swift']):.2f} |")
    lines += ["", "| memory | processes | PSS MiB | RSS MiB | largest process RSS MiB |", "|---|---:|---:|---:|---:|"]
    for name, idle_mem in idle.items():
        lines.append(f"| {name}, idle | {idle_mem['processes']:.0f} | {idle_mem['pss_mib']} | {idle_mem['rss_mib']} | "
                     f"{idle_mem['max_process_rss_mib']} |")
        peak = peaks.get(name, {})
        lines.append(f"| {name}, peak under load | {peak.get('processes', 0):.0f} | {peak.get('pss_mib', 0)} | "
                     f"{peak.get('rss_mib', 0)} | {peak.get('max_process_rss_mib', 0)} |")
    swift_pss = idle["OpenStack Swift"]["pss_mib"]
    ratio = idle["edgestore"]["pss_mib"] / swift_pss if swift_pss else 0.0
    lines += ["", f"Idle PSS, edgestore / Swift: {ratio:.3f}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
