"""The scenarios: small objects (PUT, GET, HEAD, DELETE phases, as swift-bench runs them),
large objects (PUT, GET), a mixed load (45% GET, 30% HEAD, 15% PUT, 10% DELETE, as MinIO's
warp mixes them) and listing a 10,000-object bucket, whole and with a delimiter."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from edgestore.bench.runner import PhaseResult, body, run_phase
from edgestore.bench.targets import Target

__all__ = ["Settings", "SCENARIOS", "fill_bucket", "list_names"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    bucket: str
    concurrency: int = 8
    count: int | None = None        # operations per phase (each scenario has its default)
    duration_s: float | None = None
    size: int | None = None         # object size (each scenario has its default)
    progress: bool = True
    list_objects: int = 10_000
    list_repeats: int = 5
    list_bucket: str | None = None  # an already filled bucket to list (no fill, no cleanup)


def _size(settings: Settings, default: int) -> int:
    return settings.size if settings.size is not None else default


def _count(settings: Settings, default: int) -> int | None:
    return None if settings.duration_s and settings.count is None else (settings.count or default)


async def _phases(target: Target, settings: Settings, scenario: str, size: int, count: int | None,
                  phases: tuple[str, ...]) -> list[PhaseResult]:
    """The classic sequence over one set of keys: PUT writes them (a count, or for a
    duration), GET and HEAD read them, DELETE removes each one written."""
    bucket = settings.bucket
    written = 1

    def name(i: int) -> str:
        return f"{scenario}/{i:08d}"

    async def put(i: int) -> int:
        await target.put(bucket, name(i), body(size, f"{scenario}{i}"), size)
        return size

    async def get(i: int) -> int:
        return await target.get(bucket, name(i % written))

    async def head(i: int) -> int:
        await target.head(bucket, name(i % written))
        return 0

    async def delete(i: int) -> int:
        await target.delete(bucket, name(i))
        return 0

    work: dict[str, Callable[[int], Awaitable[int]]] = {"PUT": put, "GET": get, "HEAD": head, "DELETE": delete}
    results = []
    for phase in phases:
        if phase == "DELETE":
            result = await run_phase(scenario, phase, delete, settings.concurrency, count=written,
                                     progress=settings.progress)
        else:
            result = await run_phase(scenario, phase, work[phase], settings.concurrency, count=count,
                                     duration_s=None if count is not None else settings.duration_s,
                                     progress=settings.progress)
        if phase == "PUT":
            written = max(result.ops + result.errors, 1)
        results.append(result)
    if "DELETE" not in phases:
        await run_phase(scenario, "cleanup", delete, settings.concurrency, count=written, progress=False)
    return results


async def small(target: Target, settings: Settings) -> list[PhaseResult]:
    return await _phases(target, settings, "small", _size(settings, 4096), _count(settings, 1000),
                         ("PUT", "GET", "HEAD", "DELETE"))


async def large(target: Target, settings: Settings) -> list[PhaseResult]:
    return await _phases(target, settings, "large", _size(settings, 64 * MIB), _count(settings, 16), ("PUT", "GET"))


async def mixed(target: Target, settings: Settings) -> list[PhaseResult]:
    """A preloaded pool of objects, then a random mix over it; DELETE takes a key out of
    the pool and PUT adds a new one."""
    size = _size(settings, 64 * 1024)
    pool_size = 200
    pool = [f"mixed/{i:08d}" for i in range(pool_size)]
    preload = await run_phase("mixed", "preload", lambda i: _put(target, settings.bucket, pool[i], size),
                              settings.concurrency, count=pool_size, progress=settings.progress)
    rng = random.Random(7)
    fresh = iter(range(pool_size, 10**9))
    tallies = {op: PhaseResult("mixed", op) for op in ("GET", "HEAD", "PUT", "DELETE")}

    async def one(i: int) -> int:
        roll = rng.random()
        op = "GET" if roll < 0.45 else "HEAD" if roll < 0.75 else "PUT" if roll < 0.90 else "DELETE"
        tally = tallies[op]
        began = time.monotonic()
        if op == "PUT" or len(pool) < 2:
            key = f"mixed/{next(fresh):08d}"
            moved = await _put(target, settings.bucket, key, size)
            pool.append(key)
        elif op == "DELETE":
            key = pool.pop(rng.randrange(len(pool)))
            await target.delete(settings.bucket, key)
            moved = 0
        elif op == "GET":
            moved = await target.get(settings.bucket, rng.choice(pool))
        else:
            await target.head(settings.bucket, rng.choice(pool))
            moved = 0
        tally.ops += 1
        tally.bytes += moved
        tally.latencies.append(time.monotonic() - began)
        return moved

    count = settings.count if settings.count else None
    total = await run_phase("mixed", "all", one, settings.concurrency, count=count,
                            duration_s=None if count else (settings.duration_s or 30.0), progress=settings.progress)
    for tally in tallies.values():
        tally.seconds = total.seconds
    for key in pool:
        try:
            await target.delete(settings.bucket, key)
        except Exception:  # noqa: BLE001 - cleanup is best effort
            pass
    return [preload, total, *tallies.values()]


async def _put(target: Target, bucket: str, key: str, size: int) -> int:
    await target.put(bucket, key, body(size, key), size)
    return size


async def listing(target: Target, settings: Settings) -> list[PhaseResult]:
    """Fill a bucket of its own with `list_objects` tiny objects in 100 "directories",
    then list it whole `list_repeats` times and with a delimiter ten times as often (a
    delimited listing is one page of 100 prefixes, some 30x cheaper: five of them took
    ~40 ms, a sample one scheduler hiccup could halve)."""
    bucket = settings.list_bucket or settings.bucket + "-list"
    names = list_names(settings.list_objects)
    results = []
    if settings.list_bucket is None:
        await target.create_bucket(bucket)
        results.append(await fill_bucket(target, bucket, names, settings))
    for phase, delimiter, repeats in (("full", "", settings.list_repeats),
                                      ("delimiter", "/", settings.list_repeats * 10)):
        async def one(i: int, delimiter: str = delimiter) -> int:
            await target.list(bucket, delimiter)
            return 0
        results.append(await run_phase("list", phase, one, 1, count=repeats, progress=settings.progress))
    if settings.list_bucket is not None:
        return results
    await run_phase("list", "cleanup", lambda i: _delete(target, bucket, names[i]), settings.concurrency,
                    count=len(names), progress=settings.progress)
    await target.delete_bucket(bucket)
    return results


def list_names(count: int) -> list[str]:
    return [f"dir{i % 100:03d}/obj{i:06d}" for i in range(count)]


async def fill_bucket(target: Target, bucket: str, names: list[str], settings: Settings) -> PhaseResult:
    return await run_phase("list", "fill", lambda i: _put(target, bucket, names[i], 16), settings.concurrency,
                           count=len(names), progress=settings.progress)


async def _delete(target: Target, bucket: str, key: str) -> int:
    await target.delete(bucket, key)
    return 0


Scenario = Callable[[Target, Settings], Awaitable[list[PhaseResult]]]
SCENARIOS: dict[str, Scenario] = {"small": small, "large": large, "mixed": mixed, "list": listing}
