"""The job runner: every job has a name, a `run_once`, and an interval; the runner runs each
periodically in its own task, records what the last run did, and never lets one job's
failure stop the others. `run_once` is also what the admin API and tests call directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Job", "JobRunner", "JobState"]

log = logging.getLogger(__name__)


class Job(Protocol):
    name: str
    interval_s: float

    async def run_once(self, **options: Any) -> dict[str, Any]:
        """Do one pass; return counters for the status page. Options are job-specific
        (an operator running a job by hand may narrow or widen it)."""
        ...


@dataclass
class JobState:
    runs: int = 0
    last_started: float | None = None
    last_result: dict[str, Any] = field(default_factory=dict)
    last_error: str | None = None


class JobRunner:
    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = {job.name: job for job in jobs}
        self.state = {job.name: JobState() for job in jobs}
        self._tasks: list[asyncio.Task[None]] = []
        self._locks = {job.name: asyncio.Lock() for job in jobs}

    async def run_once(self, name: str, **options: Any) -> dict[str, Any]:
        """Run one pass of a job now (waiting for a pass already running to finish first)."""
        job = self.jobs[name]
        state = self.state[name]
        async with self._locks[name]:
            state.last_started = time.time()
            state.runs += 1
            try:
                state.last_result = await job.run_once(**options)
                state.last_error = None
            except Exception as exc:
                state.last_error = f"{type(exc).__name__}: {exc}"
                raise
            return state.last_result

    def start(self) -> None:
        for job in self.jobs.values():
            self._tasks.append(asyncio.ensure_future(self._periodic(job)))

    async def _periodic(self, job: Job) -> None:
        while True:
            await asyncio.sleep(job.interval_s)
            try:
                await self.run_once(job.name)
            except asyncio.CancelledError:
                raise
            except Exception:  # the edge of a job: log once, try again next interval
                log.exception("job %s failed", job.name)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
