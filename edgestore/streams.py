"""Reading request bodies whole, for the small ones (configs, records), with a cap."""

from __future__ import annotations

import aiohttp

__all__ = ["read_limited", "BodyTooLarge"]


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


async def read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole stream, or BodyTooLarge as soon as it passes `limit` bytes."""
    parts = []
    size = 0
    while chunk := await stream.readany():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)
