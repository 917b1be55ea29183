"""The RingKeeper on real ring files: it adopts only newer rings, settles a tie between two
different rings of one version the same way everywhere, refuses damaged bytes, never
overwrites a newer shared file, and restores a file replaced with an older ring."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from pathlib import Path

import pytest
from edgestore.ring import RingBuilder, RingError, save_builder
from edgestore.ring.io import builder_from_bytes, builder_to_bytes

from edgestore.cluster.ringkeeper import RingKeeper, StaleRing, ring_from_bytes, ring_key
from edgestore.cluster.ringstate import RingState


def make_builder() -> RingBuilder:
    builder = RingBuilder(part_power=4, replicas=3, min_part_hours=1, salt=b"s" * 16)
    for zone in range(1, 5):
        builder.add_device(region=1, zone=zone, ip="127.0.0.1", port=6000 + zone, device="d1", weight=100.0)
    builder.rebalance(seed=1)
    return builder


def bumped(builder: RingBuilder, times: int = 1, weight: float = 100.0) -> bytes:
    """The ring file of a copy of `builder` after `times` weight changes."""
    copy = builder_from_bytes(builder_to_bytes(builder))
    for _ in range(times):
        copy.set_weight(0, weight)
    return builder_to_bytes(copy)


def keeper_at(path: Path, builder: RingBuilder) -> RingKeeper:
    save_builder(builder, path)
    return RingKeeper(RingState.load(path))


def file_version(path: Path) -> int:
    return int(builder_from_bytes(path.read_bytes()).version)


def test_adopts_a_newer_ring_and_refuses_an_older_one(tmp_path: Path) -> None:
    builder = make_builder()
    keeper = keeper_at(tmp_path / "ring", builder)
    start = keeper.ring.version
    newer = bumped(builder, 2)
    assert asyncio.run(keeper.install(newer, "peer")) is True
    assert keeper.ring.version == start + 2 and file_version(tmp_path / "ring") == start + 2
    assert keeper.file_bytes() == newer
    assert asyncio.run(keeper.install(bumped(builder, 1), "peer")) is False
    assert asyncio.run(keeper.install(newer, "peer")) is False
    assert keeper.ring.version == start + 2 and file_version(tmp_path / "ring") == start + 2


def test_two_rings_of_one_version_settle_on_the_same_one_everywhere(tmp_path: Path) -> None:
    builder = make_builder()
    first, second = bumped(builder, 1, 50.0), bumped(builder, 1, 70.0)
    a = keeper_at(tmp_path / "a", builder)
    b = keeper_at(tmp_path / "b", builder)
    asyncio.run(a.install(first, "x"))
    asyncio.run(b.install(second, "y"))
    assert a.ring.version == b.ring.version and a.key != b.key
    asyncio.run(a.install(b.file_bytes(), "b"))
    asyncio.run(b.install(a.file_bytes(), "a"))
    assert a.key == b.key == max(ring_key(ring_from_bytes(first, "1")), ring_key(ring_from_bytes(second, "2")))


def test_damaged_bytes_are_refused(tmp_path: Path) -> None:
    builder = make_builder()
    keeper = keeper_at(tmp_path / "ring", builder)
    document = json.loads(gzip.decompress(bumped(builder, 3)))
    document["payload"]["devices"][1]["weight"] = 1.0   # the stored checksum no longer matches
    for damaged in (gzip.compress(json.dumps(document).encode()), bumped(builder, 3)[:-20], b"not a ring"):
        with pytest.raises(RingError):
            asyncio.run(keeper.install(damaged, "liar"))
    assert keeper.ring.version == builder.version and file_version(tmp_path / "ring") == builder.version


def test_a_shared_file_already_newer_is_not_overwritten(tmp_path: Path) -> None:
    builder = make_builder()
    path = tmp_path / "ring"
    slow, fast = keeper_at(path, builder), RingKeeper(RingState.load(path))
    asyncio.run(fast.install(bumped(builder, 5), "admin"))
    assert asyncio.run(slow.install(bumped(builder, 2), "peer")) is True   # newer than what it serves
    assert slow.ring.version == builder.version + 2
    assert file_version(path) == builder.version + 5                    # but the file stays newest
    assert asyncio.run(slow.refresh_from_disk()) is True and slow.ring.version == builder.version + 5


def test_a_file_replaced_with_an_older_ring_is_restored(tmp_path: Path) -> None:
    builder = make_builder()
    path = tmp_path / "ring"
    keeper = keeper_at(path, builder)
    asyncio.run(keeper.install(bumped(builder, 2), "peer"))
    tmp = tmp_path / "old"
    tmp.write_bytes(builder_to_bytes(builder))
    os.replace(tmp, path)
    assert asyncio.run(keeper.refresh_from_disk()) is False
    assert keeper.ring.version == builder.version + 2 and file_version(path) == builder.version + 2


def test_an_edit_makes_a_new_version_and_a_refused_edit_changes_nothing(tmp_path: Path) -> None:
    builder = make_builder()
    path = tmp_path / "ring"
    keeper = keeper_at(path, builder)
    ring, dev_id = asyncio.run(keeper.change(lambda b: b.add_device(
        region=1, zone=5, ip="127.0.0.1", port=6005, device="d1", weight=100.0)))
    assert dev_id == 4 and ring.version == builder.version + 1 and file_version(path) == ring.version
    with pytest.raises(RingError):
        asyncio.run(keeper.change(lambda b: b.remove_device(99)))
    assert keeper.ring.version == ring.version and file_version(path) == ring.version
    # A node whose file was swapped for an older ring before it knew the bytes of the
    # ring it serves refuses to edit the older one.
    state = RingState.load(path)
    save_builder(builder, path)
    stale = RingKeeper(state)
    with pytest.raises(StaleRing):
        asyncio.run(stale.change(lambda b: b.set_weight(0, 1.0)))
    assert file_version(path) == builder.version
