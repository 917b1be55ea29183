"""`edgestore ring ...` through the real entry point, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def edgestore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgestore.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def ok(*args: str, cwd: Path) -> str:
    proc = edgestore(*args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def ok_json(*args: str, cwd: Path) -> Any:
    return json.loads(ok(*args, "--json", cwd=cwd))


def fails(*args: str, cwd: Path) -> str:
    """Run a command that must fail as a user error: exit 2, one line on stderr."""
    proc = edgestore(*args, cwd=cwd)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgestore ring: ")
    return lines[0]


@pytest.fixture(scope="module")
def ring_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ring of 4 zones x 2 devices (part power 6, 3 replicas), rebalanced once."""
    path = tmp_path_factory.mktemp("ring")
    ok("ring", "create", "r.ring", "--part-power", "6", "--replicas", "3", cwd=path)
    for zone in range(4):
        for disk in ("sda", "sdb"):
            ok("ring", "add", "r.ring", "--region", "1", "--zone", str(zone),
               "--ip", f"10.0.{zone}.1", "--port", "6200", "--device", disk,
               "--weight", "1", cwd=path)
    ok("ring", "rebalance", "r.ring", "--seed", "1", cwd=path)
    return path


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    out = ok("ring", "create", "x.ring", "--part-power", "4", "--replicas", "2",
             "--min-part-hours", "0", cwd=tmp_path)
    assert "x.ring" in out
    before = (tmp_path / "x.ring").read_bytes()
    assert "exists" in fails("ring", "create", "x.ring", "--part-power", "5",
                             "--replicas", "3", cwd=tmp_path)
    assert (tmp_path / "x.ring").read_bytes() == before
    shown = ok_json("ring", "show", "x.ring", cwd=tmp_path)
    assert (shown["part_power"], shown["replicas"], shown["min_part_hours"]) == (4, 2, 0)
    assert shown["devices"] == []
    fails("ring", "create", "y.ring", "--part-power", "40", "--replicas", "3", cwd=tmp_path)


def test_add_prints_the_new_id_alone(tmp_path: Path) -> None:
    ok("ring", "create", "r.ring", "--part-power", "4", "--replicas", "1", cwd=tmp_path)
    for expected in range(3):
        out = ok("ring", "add", "r.ring", "--region", "0", "--zone", str(expected),
                 "--ip", "10.0.0.1", "--port", str(6200 + expected), "--device", "sda",
                 "--weight", "1.5", cwd=tmp_path)
        assert out == f"{expected}\n"


def test_show_and_rebalance_json(ring_dir: Path) -> None:
    shown = ok_json("ring", "show", "r.ring", "--parts", cwd=ring_dir)
    assert shown["part_power"] == 6 and shown["replicas"] == 3
    assert shown["min_part_hours"] == 1 and shown["version"] == 9
    assert shown["balance"] < 5.0
    assert [dev["id"] for dev in shown["devices"]] == list(range(8))
    assert set(shown["devices"][0]) >= {"id", "region", "zone", "ip", "port", "device",
                                        "weight", "parts"}
    assert sum(dev["parts"] for dev in shown["devices"]) == 64 * 3
    assignments = shown["assignments"]
    assert len(assignments) == 64
    for part_devs in assignments:
        assert len(part_devs) == 3 and len(set(part_devs)) == 3
    # Nothing changed: a further rebalance moves nothing and keeps the version.
    again = ok_json("ring", "rebalance", "r.ring", "--seed", "2", cwd=ring_dir)
    assert again == {"moved": 0, "balance": shown["balance"], "version": 9}
    text = ok("ring", "show", "r.ring", cwd=ring_dir)
    assert "part power 6" in text and "10.0.3.1" in text


def test_lookup_json(ring_dir: Path) -> None:
    found = ok_json("ring", "lookup", "r.ring", "AUTH_test", "photos", "cat.jpg",
                    cwd=ring_dir)
    assert 0 <= found["partition"] < 64
    primaries, handoffs = found["primaries"], found["handoffs"]
    assert len(primaries) == 3 and len(handoffs) == 5
    ids = [dev["id"] for dev in primaries + handoffs]
    assert sorted(ids) == list(range(8))
    assert set(primaries[0]) == {"id", "region", "zone", "ip", "port", "device"}
    # The first handoff is in the zone no primary uses.
    assert handoffs[0]["zone"] not in {dev["zone"] for dev in primaries}
    shown = ok_json("ring", "show", "r.ring", "--parts", cwd=ring_dir)
    assert [dev["id"] for dev in primaries] == shown["assignments"][found["partition"]]
    account = ok_json("ring", "lookup", "r.ring", "AUTH_test", cwd=ring_dir)
    assert len(account["primaries"]) == 3
    text = ok("ring", "lookup", "r.ring", "AUTH_test", "photos", cwd=ring_dir)
    assert text.startswith("partition ")


def test_weight_remove_and_min_part_hours(tmp_path: Path) -> None:
    ok("ring", "create", "r.ring", "--part-power", "6", "--replicas", "3", cwd=tmp_path)
    for zone in range(5):
        ok("ring", "add", "r.ring", "--region", "1", "--zone", str(zone), "--ip",
           f"10.0.{zone}.1", "--port", "6200", "--device", "sda", "--weight", "1",
           cwd=tmp_path)
    first = ok_json("ring", "rebalance", "r.ring", "--seed", "1", cwd=tmp_path)
    assert first["moved"] == 192
    ok("ring", "set-weight", "r.ring", "4", "3", cwd=tmp_path)
    # Every partition moved moments ago: min_part_hours (1) holds them all.
    held = ok_json("ring", "rebalance", "r.ring", "--seed", "1", cwd=tmp_path)
    assert held["moved"] == 0
    assert held["version"] == first["version"] + 1  # the weight change, not the rebalance
    ok("ring", "pretend-min-part-hours-passed", "r.ring", cwd=tmp_path)
    freed = ok_json("ring", "rebalance", "r.ring", "--seed", "1", cwd=tmp_path)
    assert freed["moved"] > 0 and freed["version"] == held["version"] + 1
    # A removed device is drained at once, min_part_hours or not, and then forgotten.
    ok("ring", "remove", "r.ring", "0", cwd=tmp_path)
    removing = ok_json("ring", "show", "r.ring", cwd=tmp_path)
    assert removing["removed"] == [0]
    assert removing["devices"][0]["weight"] == 0.0
    drained = ok_json("ring", "rebalance", "r.ring", "--seed", "1", cwd=tmp_path)
    assert drained["moved"] >= removing["devices"][0]["parts"]
    shown = ok_json("ring", "show", "r.ring", "--parts", cwd=tmp_path)
    assert [dev["id"] for dev in shown["devices"]] == [1, 2, 3, 4]
    assert all(0 not in part_devs for part_devs in shown["assignments"])
    ok("ring", "set-min-part-hours", "r.ring", "0", cwd=tmp_path)
    assert ok_json("ring", "show", "r.ring", cwd=tmp_path)["min_part_hours"] == 0


def test_user_errors_exit_2_with_one_line(ring_dir: Path, tmp_path: Path) -> None:
    assert "no such file" in fails("ring", "show", "missing.ring", cwd=tmp_path)
    fails("ring", "rebalance", "missing.ring", cwd=tmp_path)
    assert "device 99" in fails("ring", "set-weight", "r.ring", "99", "2", cwd=ring_dir)
    assert "device 99" in fails("ring", "remove", "r.ring", "99", cwd=ring_dir)
    assert "ip" in fails("ring", "add", "r.ring", "--region", "1", "--zone", "1", "--ip",
                         "10.0.0.999", "--port", "6200", "--device", "sdz", "--weight",
                         "1", cwd=ring_dir)
    assert "weight" in fails("ring", "set-weight", "r.ring", "1", "-1", cwd=ring_dir)
    (tmp_path / "bad.ring").write_bytes(b"garbage")
    assert "gzip" in fails("ring", "show", "bad.ring", cwd=tmp_path)
    ok("ring", "create", "empty.ring", "--part-power", "4", "--replicas", "3", cwd=tmp_path)
    assert "rebalance" in fails("ring", "lookup", "empty.ring", "AUTH_a", cwd=tmp_path)
    assert "weight" in fails("ring", "rebalance", "empty.ring", cwd=tmp_path)
    fails("ring", "lookup", "r.ring", "", cwd=ring_dir)
