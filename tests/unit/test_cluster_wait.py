"""When `edgestore cluster rebalance --wait` calls the data movement done: only when every
node serves the new ring and has finished a repair pass with it that compared with every
peer and found nothing to move; a down node blocks only if the ring names it."""

from __future__ import annotations

from typing import Any

from edgestore.cli.cluster import backlog

RING = {"http://10.0.0.1:8080", "http://10.0.0.2:8080"}


def node(url: str, version: int = 7, **repair: Any) -> dict[str, Any]:
    state = {"ring_version": version, "running": False, "out_of_sync": 0, "handoff_partitions": 0,
             "unreachable_peers": 0, "bytes_sent": 0, **repair}
    return {"url": url, "node": url[-6:], "up": True, "ring_version": version, "repair": state}


def settled(nodes: list[dict[str, Any]]) -> bool:
    unsettled, out_of_sync, handoff, _ = backlog(nodes, 7, RING)
    return not unsettled and out_of_sync == 0 and handoff == 0


def test_settled_when_every_node_finished_a_clean_pass_with_the_new_ring() -> None:
    assert settled([node("http://10.0.0.1:8080"), node("http://10.0.0.2:8080", version=8)])


def test_not_settled_while_anything_is_left() -> None:
    a = "http://10.0.0.1:8080"
    for blocker in (node(a, version=6), node(a, running=True), node(a, unreachable_peers=1),
                    node(a, out_of_sync=2), node(a, handoff_partitions=1)):
        assert not settled([blocker, node("http://10.0.0.2:8080")]), blocker
    old_pass = node(a)
    old_pass["repair"]["ring_version"] = 6
    assert not settled([old_pass, node("http://10.0.0.2:8080")])


def test_a_down_node_blocks_only_if_the_ring_names_it() -> None:
    assert not settled([node("http://10.0.0.1:8080"), {"url": "http://10.0.0.2:8080", "up": False}])
    assert settled([node("http://10.0.0.1:8080"), node("http://10.0.0.2:8080"),
                    {"url": "http://10.0.0.9:8080", "up": False}])
