"""`edgestore bench`: one load generator for edgestore and any other object store, through
S3 or Swift, so that both are measured by the same client in the same way."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import secrets
import sys
from pathlib import Path

from edgestore.bench.report import as_json, table
from edgestore.bench.runner import PhaseResult
from edgestore.bench.scenarios import SCENARIOS, Settings
from edgestore.bench.targets import BenchError, S3Target, SwiftTarget, Target
from edgestore.cli import CliError

DEFAULT_CLUSTER = Path("edgestore-data") / "cluster.json"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench", help="measure an object store (edgestore or another) through S3 or Swift")
    where = p.add_argument_group("the store (default: the local cluster's S3 endpoint from --cluster)")
    where.add_argument("--s3", metavar="ENDPOINT", help="an S3 endpoint URL")
    where.add_argument("--access-key")
    where.add_argument("--secret-key")
    where.add_argument("--region", default="us-east-1")
    where.add_argument("--swift", metavar="AUTH_URL", help="a Swift TempAuth URL (.../auth/v1.0)")
    where.add_argument("--user", help="Swift user (account:user)")
    where.add_argument("--key", help="Swift key")
    where.add_argument("--cluster", type=Path, default=None, help=f"cluster.json (default ./{DEFAULT_CLUSTER})")
    p.add_argument("--scenario", action="append", choices=[*SCENARIOS, "all"],
                   help="small, large, mixed, list or all (repeatable; default all)")
    p.add_argument("--concurrency", type=int, default=8, help="operations in flight (default 8)")
    p.add_argument("--count", type=int, help="operations per phase (defaults: small 1000, large 16)")
    p.add_argument("--duration", type=float, help="seconds per phase instead of a count (mixed: 30)")
    p.add_argument("--size", type=int, help="object size in bytes (defaults: small 4096, large 64 MiB, mixed 64 KiB)")
    p.add_argument("--list-objects", type=int, default=10_000, help="objects in the listing bucket (default 10000)")
    p.add_argument("--list-repeats", type=int, default=5,
                   help="full listings per phase; delimited ones ten times as many (default 5)")
    p.add_argument("--bucket", help="bucket/container to use (default: a new bench-<random>)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=bench)


def _target(args: argparse.Namespace) -> Target:
    if args.swift:
        if not (args.user and args.key):
            raise CliError("--swift needs --user and --key")
        return SwiftTarget(args.swift, args.user, args.key)
    if args.s3:
        if not (args.access_key and args.secret_key):
            raise CliError("--s3 needs --access-key and --secret-key")
        return S3Target(args.s3, args.access_key, args.secret_key, args.region)
    path = args.cluster or DEFAULT_CLUSTER
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"no store given and {path} is not readable: {exc}") from None
    return S3Target(info["s3_endpoint"], info["access_key"], info["secret_key"], info.get("region", "us-east-1"))


async def _run(target: Target, names: list[str], settings: Settings) -> list[PhaseResult]:
    await target.open(settings.concurrency)
    results: list[PhaseResult] = []
    try:
        await target.create_bucket(settings.bucket)
        for name in names:
            results += await SCENARIOS[name](target, settings)
        await target.delete_bucket(settings.bucket)
    finally:
        await target.close()
    return results


def bench(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1")
    if args.list_repeats < 1:
        raise CliError("--list-repeats must be at least 1")
    chosen = args.scenario or ["all"]
    names = list(SCENARIOS) if "all" in chosen else list(dict.fromkeys(chosen))
    settings = Settings(bucket=args.bucket or f"bench-{secrets.token_hex(4)}", concurrency=args.concurrency,
                        count=args.count, duration_s=args.duration, size=args.size,
                        progress=not args.quiet and sys.stderr.isatty(), list_objects=args.list_objects,
                        list_repeats=args.list_repeats)
    target = _target(args)
    try:
        results = asyncio.run(_run(target, names, settings))
    except BenchError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(as_json(results, target.label, dataclasses.asdict(settings)))
    else:
        print(table(results, f"{target.label}, concurrency {settings.concurrency}"))
    return 1 if any(r.errors for r in results) else 0
