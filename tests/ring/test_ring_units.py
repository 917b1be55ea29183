"""Unit tests of the ring package: devices, keys, builder, placement, file format."""

from __future__ import annotations

import gzip
import json
import math
import os
from array import array
from pathlib import Path

import pytest
import xxhash
from edgestore.ring import (
    ChecksumMismatch,
    Device,
    DeviceRemoved,
    DuplicateDevice,
    InvalidDevice,
    InvalidRingParameter,
    NotRebalanced,
    RebalanceError,
    Ring,
    RingBuilder,
    RingError,
    RingFileCorrupt,
    RingValidationError,
    UnknownDevice,
    UnsupportedFormat,
    atomic_write,
    load_builder,
    load_ring,
    save_builder,
    tiers_for_device,
)
from edgestore.ring.io import builder_from_bytes, builder_to_bytes
from edgestore.ring.keys import path_for
from ring_helpers import SALT, DevSpec, add_devices, grid, make_builder

# -- devices --------------------------------------------------------------------------------


def test_device_is_checked_and_canonical() -> None:
    dev = Device(id=3, region=1, zone=2, ip="[2001:DB8::0001]", port=6200, device="sdb1",
                 weight=2)
    assert dev.ip == "2001:db8::1"
    assert dev.weight == 2.0 and isinstance(dev.weight, float)
    assert dev.address == "[2001:db8::1]:6200/sdb1"
    assert tiers_for_device(dev) == ((1,), (1, 2), (1, 2, "2001:db8::1"),
                                     (1, 2, "2001:db8::1", 3))


@pytest.mark.parametrize("field, value", [
    ("ip", "10.0.0.256"), ("ip", "host.example"), ("port", 0), ("port", 65536),
    ("device", ""), ("device", "../etc"), ("device", "a/b"), ("weight", -1.0),
    ("weight", math.nan), ("weight", math.inf), ("region", -1), ("zone", True),
])
def test_device_rejects_bad_fields(field: str, value: object) -> None:
    fields: dict[str, object] = dict(id=0, region=1, zone=1, ip="10.0.0.1", port=6200,
                                     device="sda", weight=1.0)
    fields[field] = value
    with pytest.raises(InvalidDevice) as info:
        Device(**fields)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and isinstance(info.value, RingError)
    assert info.value.field == field


# -- keys -----------------------------------------------------------------------------------


def test_path_and_partition_follow_the_spec() -> None:
    assert path_for("a") == "/a"
    assert path_for("a", "c") == "/a/c"
    assert path_for("a", "c", "o/with/slashes") == "/a/c/o/with/slashes"
    with pytest.raises(ValueError):
        path_for("a", None, "o")
    with pytest.raises(ValueError):
        path_for("")
    builder = make_builder(grid(1, 3, 1, 1), part_power=10)
    builder.rebalance(seed=1, now=0)
    ring = Ring(builder.to_ringdata())
    path = "/AUTH_test/photos/ä.jpg"
    expected = xxhash.xxh3_64_intdigest(SALT + path.encode("utf-8")) >> (64 - 10)
    assert ring.partition_for_path(path) == expected
    assert ring.partition("AUTH_test", "photos", "ä.jpg") == expected
    part, primaries = ring.lookup("AUTH_test", "photos", "ä.jpg")
    assert part == expected and primaries == ring.primaries(expected)


# -- builder --------------------------------------------------------------------------------


def test_create_add_rebalance_lookup() -> None:
    builder = RingBuilder(part_power=8, replicas=3, min_part_hours=1)
    assert len(builder.salt) == 16
    ids = add_devices(builder, grid(1, 4, 2, 1))
    assert ids == list(range(8))
    result = builder.rebalance(seed=7, now=1000.0)
    assert result.moved == 256 * 3
    assert result.version == builder.version == 9  # 8 adds + 1 rebalance
    assert result.balance == pytest.approx(builder.balance)
    assert result.balance < 3.2  # 96 replicas each, +-1
    builder.validate()
    ring = Ring(builder.to_ringdata())
    assert ring.version == builder.version and ring.replicas == 3
    for part in range(ring.partitions):
        zones = {dev.zone for dev in ring.primaries(part)}
        assert len(zones) == 3
    assert all(count == 96 for count in builder.parts_by_device().values())


def test_builder_rejects_bad_parameters_and_ids() -> None:
    with pytest.raises(InvalidRingParameter):
        RingBuilder(part_power=25, replicas=3)
    with pytest.raises(InvalidRingParameter):
        RingBuilder(part_power=4, replicas=0)
    builder = make_builder(grid(1, 3, 1, 1), part_power=4)
    with pytest.raises(InvalidRingParameter):
        builder.set_min_part_hours(-1)
    with pytest.raises(UnknownDevice):
        builder.set_weight(99, 1.0)
    with pytest.raises(DuplicateDevice):
        builder.add_device(region=0, zone=0, ip="10.0.0.1", port=6200, device="d1", weight=1)
    with pytest.raises(InvalidDevice):
        builder.set_weight(0, -2.0)


def test_rebalance_needs_a_weighted_device() -> None:
    builder = RingBuilder(part_power=4, replicas=3, salt=SALT)
    with pytest.raises(RebalanceError):
        builder.rebalance(seed=1)
    builder.add_device(region=0, zone=0, ip="10.0.0.1", port=1, device="a", weight=0)
    with pytest.raises(RebalanceError):
        builder.rebalance(seed=1)
    with pytest.raises(NotRebalanced):
        builder.to_ringdata()


def test_fewer_devices_than_replicas_doubles_up() -> None:
    builder = make_builder(grid(1, 2, 1, 1), part_power=4, replicas=3)
    builder.rebalance(seed=1, now=0)
    builder.validate()
    counts = builder.parts_by_device()
    assert sum(counts.values()) == 48 and all(c == 24 for c in counts.values())
    for devs in builder.assignments():
        assert set(devs) == {0, 1}  # both devices serve every partition


def test_removed_device_is_drained_then_forgotten_and_ids_not_reused() -> None:
    builder = make_builder(grid(1, 4, 1, 1), part_power=6)
    builder.rebalance(seed=1, now=0)
    builder.remove_device(2)
    assert builder.device(2).weight == 0.0 and builder.removed_device_ids == (2,)
    with pytest.raises(DeviceRemoved):
        builder.set_weight(2, 1.0)
    with pytest.raises(RingValidationError):
        builder.validate()  # replicas still sit on the removed device
    result = builder.rebalance(seed=2, now=1.0)  # within min_part_hours: still drained
    assert result.moved == 48  # exactly the replicas device 2 held
    assert [dev.id for dev in builder.devices] == [0, 1, 3]
    assert all(2 not in devs for devs in builder.assignments())
    builder.validate()
    assert builder.add_device(region=0, zone=9, ip="10.9.9.9", port=1, device="x",
                              weight=1) == 4


def test_zero_weight_device_is_drained_but_kept() -> None:
    builder = make_builder(grid(1, 4, 1, 1), part_power=6)
    builder.rebalance(seed=1, now=0)
    builder.set_weight(1, 0.0)
    builder.rebalance(seed=2, now=1.0)
    assert builder.parts_by_device()[1] == 0
    assert 1 in {dev.id for dev in builder.devices}
    ring = Ring(builder.to_ringdata())
    assert all(dev.id != 1 for part in range(ring.partitions) for dev in ring.handoffs(part))


def test_version_counts_changes_only() -> None:
    builder = make_builder(grid(1, 3, 1, 1), part_power=4)
    v0 = builder.version
    first = builder.rebalance(seed=1, now=0)
    assert first.version == v0 + 1
    again = builder.rebalance(seed=1, now=10**6)
    assert again.moved == 0 and again.version == first.version


def test_min_part_hours_and_pretend() -> None:
    builder = make_builder(grid(1, 4, 1, 1), part_power=6, min_part_hours=2)
    builder.rebalance(seed=1, now=0)
    builder.add_device(region=0, zone=5, ip="10.0.5.1", port=1, device="d", weight=1.0)
    blocked = builder.rebalance(seed=1, now=3600.0)
    assert blocked.moved == 0  # every partition moved at t=0, less than 2 h ago
    builder.pretend_min_part_hours_passed()
    before = builder.assignments()
    freed = builder.rebalance(seed=1, now=3601.0)
    assert freed.moved > 0
    moved = {p for p, (a, b) in enumerate(zip(before, builder.assignments(), strict=True)) if a != b}
    stamps = builder.last_moved()
    assert {p for p in range(64) if stamps[p] == 3601.0} == moved
    # Those partitions rest for 2 h even though the new device is now underweight.
    builder.set_weight(4, 3.0)
    before = builder.assignments()
    builder.rebalance(seed=1, now=3602.0)
    again = {p for p, (a, b) in enumerate(zip(before, builder.assignments(), strict=True)) if a != b}
    assert again and again.isdisjoint(moved)


def test_min_part_hours_zero_still_stamps_moves() -> None:
    builder = make_builder(grid(1, 3, 1, 1), part_power=4, min_part_hours=0)
    builder.rebalance(seed=1, now=123.0)
    assert set(builder.last_moved()) == {123.0}


def test_validate_catches_corrupted_assignment() -> None:
    builder = make_builder(grid(1, 4, 1, 1), part_power=5)
    builder.rebalance(seed=1, now=0)
    rows = builder.rows()
    rows[1][7] = rows[0][7]  # two replicas of partition 7 on one device
    broken = RingBuilder.from_state(
        part_power=5, replicas=3, min_part_hours=1, salt=SALT, version=builder.version,
        next_dev_id=builder.next_dev_id, devices=builder.devices, removed=(), rows=rows,
        last_moved=builder.last_moved())
    with pytest.raises(RingValidationError) as info:
        broken.validate()
    assert info.value.part == 7
    rows = builder.rows()
    rows[2][3] = 42  # an id no device has
    broken = RingBuilder.from_state(
        part_power=5, replicas=3, min_part_hours=1, salt=SALT, version=builder.version,
        next_dev_id=builder.next_dev_id, devices=builder.devices, removed=(), rows=rows,
        last_moved=builder.last_moved())
    with pytest.raises(RingValidationError) as info:
        broken.validate()
    assert (info.value.part, info.value.replica) == (3, 2)


# -- placement ------------------------------------------------------------------------------


def test_handoffs_prefer_unused_regions_then_zones() -> None:
    builder = make_builder(grid(2, 3, 2, 1), part_power=5)
    builder.rebalance(seed=3, now=0)
    ring = Ring(builder.to_ringdata())
    for part in range(ring.partitions):
        primaries = ring.primaries(part)
        handoffs = list(ring.handoffs(part))
        assert len(handoffs) == 12 - 3
        assert {d.id for d in handoffs}.isdisjoint(d.id for d in primaries)
        assert len({d.id for d in handoffs}) == len(handoffs)
        zones = {(d.region, d.zone) for d in primaries}
        fresh = [(d.region, d.zone) for d in handoffs[:6 - len(zones)]]
        assert len(set(fresh)) == len(fresh) and zones.isdisjoint(fresh)
    with pytest.raises(RingError):
        ring.primaries(ring.partitions)


# -- file format ----------------------------------------------------------------------------


def _rebalanced() -> RingBuilder:
    builder = make_builder([*grid(1, 3, 2, 2), DevSpec(0, 1, 0, 2.5)], part_power=7)
    builder.rebalance(seed=5, now=100.0)
    builder.remove_device(0)
    return builder


def test_file_round_trip_is_byte_identical(tmp_path: Path) -> None:
    builder = _rebalanced()
    first, second = tmp_path / "a.ring", tmp_path / "b.ring"
    save_builder(builder, first)
    loaded = load_builder(first)
    save_builder(loaded, second)
    assert first.read_bytes() == second.read_bytes()
    assert loaded.assignments() == builder.assignments()
    assert loaded.last_moved() == builder.last_moved()
    assert loaded.removed_device_ids == (0,)
    assert loaded.salt == builder.salt and loaded.version == builder.version
    assert loaded.next_dev_id == builder.next_dev_id
    assert loaded.devices == builder.devices
    never = make_builder(grid(1, 1, 1, 1), part_power=3)
    assert builder_to_bytes(builder_from_bytes(builder_to_bytes(never))) == \
        builder_to_bytes(never)
    assert math.isinf(builder_from_bytes(builder_to_bytes(never)).last_moved()[0])


def test_file_is_versioned_gzip_json(tmp_path: Path) -> None:
    path = tmp_path / "r.ring"
    save_builder(_rebalanced(), path)
    raw = path.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip mtime pinned
    document = json.loads(gzip.decompress(raw))
    assert document["format"] == 1
    assert document["checksum"].startswith("sha256:")
    assert document["payload"]["part_power"] == 7


def _rewrite(path: Path, edit: object) -> None:
    document = json.loads(gzip.decompress(path.read_bytes()))
    edit(document)  # type: ignore[operator]
    path.write_bytes(gzip.compress(json.dumps(document).encode(), mtime=0))


def test_checksum_mismatch_is_typed(tmp_path: Path) -> None:
    path = tmp_path / "r.ring"
    save_builder(_rebalanced(), path)
    _rewrite(path, lambda doc: doc["payload"].__setitem__("version", 999))
    with pytest.raises(ChecksumMismatch):
        load_builder(path)
    with pytest.raises(ChecksumMismatch):
        load_ring(path)


def test_truncated_and_garbage_files_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "r.ring"
    save_builder(_rebalanced(), path)
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(RingFileCorrupt):
            load_builder(path)
    path.write_bytes(b"not a ring at all")
    with pytest.raises(RingFileCorrupt):
        load_builder(path)
    path.write_bytes(gzip.compress(b"[1, 2]", mtime=0))
    with pytest.raises(RingFileCorrupt):
        load_builder(path)


def test_unknown_format_is_typed(tmp_path: Path) -> None:
    path = tmp_path / "r.ring"
    save_builder(_rebalanced(), path)
    _rewrite(path, lambda doc: doc.__setitem__("format", 2))
    with pytest.raises(UnsupportedFormat):
        load_builder(path)


def test_load_ring_of_unbalanced_builder(tmp_path: Path) -> None:
    path = tmp_path / "r.ring"
    save_builder(make_builder(grid(1, 3, 1, 1), part_power=3), path)
    with pytest.raises(NotRebalanced):
        load_ring(path)


def test_atomic_write_leaves_no_temp_files(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.ring"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["r.ring"]
    assert (target.stat().st_mode & 0o777) == 0o644

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_write(target, b"three")
    assert os.listdir(tmp_path) == ["r.ring"]
    assert target.read_bytes() == b"two"


def test_ring_data_checksum_tracks_content() -> None:
    builder = _rebalanced()
    builder.rebalance(seed=1, now=10**7)
    a = builder.to_ringdata()
    b = load_builder_bytes(builder_to_bytes(builder)).to_ringdata()
    assert a.checksum == b.checksum
    builder.set_weight(1, 5.0)
    assert builder.to_ringdata().checksum != a.checksum
    assert a.replica2part2dev[0].readonly
    assert isinstance(array("H", a.replica2part2dev[0]), array)


def load_builder_bytes(data: bytes) -> RingBuilder:
    return builder_from_bytes(data)
