"""Hybrid logical clock: timestamps that order every write in the cluster.

A timestamp is an integer: wall-clock milliseconds in the high bits and a 16-bit logical
counter in the low bits. It never goes backwards on one node, even when the wall clock
does (a Pi without an RTC boots with a wrong clock until NTP catches up), and it moves past
any timestamp the node has observed from a peer. Ties between nodes are broken by node id
(records carry both), so last-writer-wins merges agree everywhere.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Protocol

__all__ = ["Clock", "HybridClock", "ts_to_seconds", "seconds_to_ts"]

COUNTER_BITS = 16


class Clock(Protocol):
    def now(self) -> int: ...

    def observe(self, ts: int) -> None: ...


def ts_to_seconds(ts: int) -> float:
    return (ts >> COUNTER_BITS) / 1000.0


def seconds_to_ts(seconds: float) -> int:
    return int(seconds * 1000) << COUNTER_BITS


class HybridClock:
    """Monotonic hybrid logical clock; thread-safe (store threads and the loop share it)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._last = 0
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            physical = int(self._wall() * 1000) << COUNTER_BITS
            self._last = physical if physical > self._last else self._last + 1
            return self._last

    def observe(self, ts: int) -> None:
        """Move past a timestamp seen from a peer, so our next write orders after it."""
        with self._lock:
            if ts > self._last:
                self._last = ts

