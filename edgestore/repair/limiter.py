"""A token bucket over bytes: repair traffic stays under a configured rate, so it never
starves clients of the link or wears an SD card faster than the operator allows."""

from __future__ import annotations

import asyncio
import time

__all__ = ["ByteRateLimiter"]


class ByteRateLimiter:
    def __init__(self, bytes_per_s: float, burst_bytes: float | None = None) -> None:
        self.rate = bytes_per_s
        self.burst = burst_bytes if burst_bytes is not None else max(bytes_per_s, 4 * 1024 * 1024)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, nbytes: int) -> None:
        """Wait until `nbytes` may be sent. A request larger than the burst waits for the
        whole burst and goes into debt, rather than never going at all."""
        if self.rate <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            needed = min(nbytes, self.burst)
            if self._tokens < needed:
                await asyncio.sleep((needed - self._tokens) / self.rate)
                self._tokens = needed
                self._stamp = time.monotonic()
            self._tokens -= nbytes
