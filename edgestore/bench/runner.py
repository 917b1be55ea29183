"""Running one phase of a benchmark: N workers share a count (or a deadline), time each
operation, and count errors; a line of progress goes to stderr every second."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

import aiohttp

from edgestore.bench.targets import BenchError

__all__ = ["PhaseResult", "run_phase", "body", "percentile"]

CHUNK = 1024 * 1024
_RANDOM = os.urandom(CHUNK)
PROGRESS_EVERY_S = 1.0


@dataclass
class PhaseResult:
    scenario: str
    phase: str
    ops: int = 0
    errors: int = 0
    seconds: float = 0.0
    bytes: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)
    first_error: str | None = None

    def row(self) -> dict[str, object]:
        return {"scenario": self.scenario, "phase": self.phase, "ops": self.ops, "errors": self.errors,
                "seconds": round(self.seconds, 3),
                "ops_per_s": round(self.ops / self.seconds, 1) if self.seconds else 0.0,
                "mib_per_s": round(self.bytes / self.seconds / CHUNK, 1) if self.seconds else 0.0,
                "p50_ms": round(percentile(self.latencies, 50) * 1000, 1),
                "p99_ms": round(percentile(self.latencies, 99) * 1000, 1),
                "first_error": self.first_error}


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


async def body(size: int, seed: str) -> AsyncIterator[bytes]:
    """`size` bytes, streamed in 1 MiB pieces, each piece unique (its first bytes name the
    object and the piece): a store that deduplicates blocks gains nothing from it."""
    sent, index = 0, 0
    while sent < size:
        n = min(CHUNK, size - sent)
        stamp = f"{seed}:{index}:".encode()[:n]
        yield stamp + _RANDOM[:n - len(stamp)]
        sent += n
        index += 1


Work = Callable[[int], Awaitable[int]]   # operation number -> bytes moved


async def run_phase(scenario: str, phase: str, work: Work, concurrency: int, count: int | None = None,
                    duration_s: float | None = None, progress: bool = True) -> PhaseResult:
    result = PhaseResult(scenario, phase)
    issued = 0
    deadline = time.monotonic() + duration_s if duration_s else None
    started = time.monotonic()

    def next_op() -> int | None:
        nonlocal issued
        if count is not None and issued >= count:
            return None
        if deadline is not None and time.monotonic() >= deadline:
            return None
        issued += 1
        return issued - 1

    async def worker() -> None:
        while (op := next_op()) is not None:
            began = time.monotonic()
            try:
                moved = await work(op)
            except (TimeoutError, BenchError, aiohttp.ClientError, OSError) as exc:
                result.errors += 1
                result.first_error = result.first_error or str(exc)[:300]
                continue
            result.latencies.append(time.monotonic() - began)
            result.ops += 1
            result.bytes += moved

    async def report() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            elapsed = time.monotonic() - started
            total = f"/{count}" if count is not None else f" ({elapsed:.0f}/{duration_s:.0f} s)"
            print(f"\r  {scenario} {phase}: {result.ops}{total} ops, {result.ops / elapsed:.0f} ops/s, "
                  f"{result.errors} errors   ", end="", file=sys.stderr, flush=True)

    reporter = asyncio.ensure_future(report()) if progress else None
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        if reporter is not None:
            reporter.cancel()
            print("\r" + " " * 78 + "\r", end="", file=sys.stderr, flush=True)
    result.seconds = time.monotonic() - started
    return result
