"""`edgestore up --group-commit-window-ms`: the window lands in every node's config of a
new cluster, as the node's own config parser reads it; without the flag, the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgestore.cli import CliError
from edgestore.cli.up import _create
from edgestore.config import NodeConfig, load_config


def _windows(state: dict[str, object]) -> list[float]:
    nodes = state["nodes"]
    assert isinstance(nodes, list)
    return [load_config(node["config"]).group_commit_window_ms for node in nodes]


@pytest.mark.parametrize("window", [0.0, 12.5, 1000.0])
def test_the_window_given_is_every_nodes_window(tmp_path: Path, window: float) -> None:
    state = _create(tmp_path, 3, 3, 19000, 4, False, None, window)
    assert _windows(state) == [window] * 3


def test_without_the_flag_nodes_keep_the_default(tmp_path: Path) -> None:
    state = _create(tmp_path, 2, 2, 19000, 4, False, None)
    assert _windows(state) == [NodeConfig.group_commit_window_ms] * 2


@pytest.mark.parametrize("window", [-1.0, 1000.5])
def test_a_window_out_of_range_is_refused_before_anything_is_written(tmp_path: Path, window: float) -> None:
    with pytest.raises(CliError, match="--group-commit-window-ms"):
        _create(tmp_path / "data", 2, 2, 19000, 4, False, None, window)
    assert not (tmp_path / "data").exists()
