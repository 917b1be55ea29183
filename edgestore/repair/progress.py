"""What every background pass reports while it runs and after: a base for their progress
records, and the bookkeeping of starting and finishing a pass."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, TypeVar

__all__ = ["PassProgress", "running_pass"]


@dataclass
class PassProgress:
    passes: int = 0
    running: bool = False
    started: float | None = None
    last_pass_s: float | None = None


P = TypeVar("P", bound=PassProgress)


@contextmanager
def running_pass(fresh: P, previous: PassProgress) -> Iterator[P]:
    """Count a new pass on `fresh` (which replaces `previous` as what status shows) and
    mark it finished, with its duration, however it ends."""
    fresh.passes = previous.passes + 1
    fresh.running = True
    fresh.started = time.time()
    try:
        yield fresh
    finally:
        fresh.running = False
        fresh.last_pass_s = time.time() - fresh.started
