"""The Swift listing selection (api/swift/listing.py) decides the same page however the
name-ordered stream is cut into batches (a subdir, a marker or the limit may fall across
pages) as when it is fed one name at a time."""

from __future__ import annotations

import asyncio
import itertools
from typing import AsyncIterator

from edgestore.api.swift.listing import ListingParams, Subdir, select, select_pages

NAMES = sorted(["a", "b/1", "b/2", "b/c/3", "b/c/4", "bb", "c", "d.txt", "d/x", "d/y/z", "e"])


def names_of(entries: list[str | Subdir]) -> list[str]:
    return [e.name if isinstance(e, Subdir) else e for e in entries]


async def batched(size: int) -> AsyncIterator[list[str]]:
    for start in range(0, len(NAMES), size):
        yield NAMES[start:start + size]


async def one_by_one() -> AsyncIterator[tuple[str, str]]:
    for name in NAMES:
        yield name, name


def test_every_cut_of_the_stream_into_batches_gives_the_same_page() -> None:
    async def go() -> None:
        cases = itertools.product(("", "b/", "d"), ("", "/"), ("", "b/1", "b/c/"), ("", "d/"), (0, 1, 2, 5, 100),
                                  (False, True), (False, True))
        for prefix, delimiter, marker, end_marker, limit, reverse, path_only in cases:
            params = ListingParams(prefix, delimiter, marker, end_marker, limit, reverse, path_only)
            want = names_of(await select(one_by_one(), params))
            if not (delimiter or marker or end_marker or path_only):   # as plain as it gets: check it by hand
                under = [name for name in NAMES if name.startswith(prefix)]
                assert want == (under[::-1][:limit] if reverse else under[:limit]), params
            for size in (1, 2, 3, 7, len(NAMES)):
                got = await select_pages(batched(size), params, lambda name: name)
                assert names_of(got) == want, (params, size)
    asyncio.run(go())
