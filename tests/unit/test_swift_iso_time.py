"""Swift listings' last_modified (api/swift/context.py iso_time) is what
datetime.fromtimestamp writes, rounding of the microseconds included."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from edgestore.api.swift.context import iso_time


def by_datetime(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def test_iso_time_writes_what_datetime_writes() -> None:
    rng = random.Random(7)
    values = [rng.uniform(0, 4e9) for _ in range(20000)]
    values += [rng.getrandbits(41) / 1000.0 for _ in range(20000)]   # what a record's ts gives
    values += [s + 0.9999995 for s in range(0, 2000, 7)]               # rounds up into the next second
    values += [0.0, 5e-7, 1.5e-6, 2.5e-6, 1e9 + 0.0000005]             # halves: to even
    for seconds in values:
        assert iso_time(seconds) == by_datetime(seconds), seconds
