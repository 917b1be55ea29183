"""[store] group_commit_window_ms: parsed, checked, and handed to each device's metadata store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgestore.config import ConfigError, parse_config
from edgestore.store.device import LocalDevice


def _raw(store: dict[str, Any]) -> dict[str, Any]:
    return {"node": {"id": "n1", "listen": "127.0.0.1:9000", "ring": "cluster.ring",
                     "cluster_secret": "s" * 32},
            "devices": [{"name": "d1", "path": "d1"}], "store": store}


def test_the_window_defaults_to_50_ms_and_can_be_turned_off(tmp_path: Path) -> None:
    assert parse_config(_raw({}), tmp_path).group_commit_window_ms == 50.0
    assert parse_config(_raw({"group_commit_window_ms": 0}), tmp_path).group_commit_window_ms == 0.0


@pytest.mark.parametrize("bad", [-1, 5000, "50", True])
def test_a_window_that_is_not_a_sane_number_of_ms_is_refused(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ConfigError, match="group_commit_window_ms"):
        parse_config(_raw({"group_commit_window_ms": bad}), tmp_path)


def test_the_device_hands_its_window_to_the_metadata_store(tmp_path: Path) -> None:
    device = LocalDevice("d1", tmp_path / "d1", group_commit_window_s=0.0)
    try:
        assert device.meta._pending.window_s == 0.0
    finally:
        device.meta.close()
