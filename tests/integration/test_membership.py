"""Online membership against real node processes, under a steady PUT/GET load: a new node
joins with `serve --join` and takes its share after `cluster add-device` + `rebalance`;
a removed node drains to the new primaries without any object ever having fewer than
three copies; ring changes made through one node (or a ring file edited on one node)
reach every node by gossip; and no node ever goes back to an older ring, whatever a
peer claims or an operator copies over its file.

The tests run in file order on one cluster: 4 nodes, then 5, then 4 again."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlencode

import pytest
from clusterlib import LocalCluster
from conftest import make_s3
from edgestore.ring.io import builder_from_bytes, builder_to_bytes
from opslib import CLI_TIMEOUT_S, cli, locate, missing_copies, status
from steadyload import SteadyLoad

from edgestore.cluster.rpc import EMPTY_DIGEST, body_digest, signed_headers
from edgestore.store.records import KIND_OBJECT, object_name

REPAIR_INTERVAL_S = 3
CONVERGE_TIMEOUT_S = 100
BUCKETS = [f"member-{i}" for i in range(6)]   # objects are placed by bucket: spread them


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("membership"),
                         extra=["--repair-interval", str(REPAIR_INTERVAL_S), "--part-power", "8"])
    try:
        local.start()
        s3 = make_s3(local.endpoint, *local.credentials)
        for bucket in BUCKETS:
            s3.create_bucket(Bucket=bucket)
        yield local
    finally:
        local.stop()


# -- helpers -------------------------------------------------------------------------------


def cli_json(cluster: LocalCluster, *args: str) -> Any:
    return json.loads(cli(cluster, *args, "--json"))


def secret_of(cluster: LocalCluster) -> bytes:
    return Path(cluster.info["secret_file"]).read_text().strip().encode()


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/_admin/health", timeout=10) as response:
        return dict(json.loads(response.read()))


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def device_of(ring: dict[str, Any], url: str) -> dict[str, Any]:
    return next(d for d in ring["devices"] if d["port"] == port_of(url))


def node_status(cluster: LocalCluster, url: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The node's entry in the cluster's status (a node outside the ring is listed once
    its first gossip round announced it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        nodes = status(cluster)["nodes"]
        for node in nodes:
            if node["url"] == url:
                return dict(node)
        assert time.monotonic() < deadline, f"{url} not in status: {[n['url'] for n in nodes]}"
        time.sleep(0.5)


def wait_for_versions(urls: list[str], version: int, timeout_s: float = 30.0) -> dict[str, int]:
    """Poll each node's health until all serve `version`; the versions last seen."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, int] = {}
    while time.monotonic() < deadline:
        seen = {url: health(url)["ring_version"] for url in urls}
        if all(v == version for v in seen.values()):
            break
        time.sleep(0.3)
    return seen


def signed_get(url: str, path: str, secret: bytes) -> dict[str, Any]:
    request = urllib.request.Request(url + path, headers=signed_headers(secret, "GET", path, EMPTY_DIGEST))
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def copies(urls: list[str], secret: bytes, account: str, bucket: str, key: str, blocks: list[str]) -> list[int]:
    """How many devices of all `urls` hold the object's record, and each of its blocks,
    present and intact: the real replication, wherever the ring says the copies belong."""
    query = urlencode(sorted({"kind": KIND_OBJECT, "name": object_name(account, bucket, key)}.items()),
                      quote_via=quote, safe="")
    paths = [f"/_internal/d1/check?{query}"] + [f"/_internal/d1/block/{block}/check" for block in blocks]
    counts = [0] * len(paths)
    for url in urls:
        for i, path in enumerate(paths):
            answer = signed_get(url, path, secret)
            counts[i] += bool(answer["present"] and answer["intact"])
    return counts


def run_cli(*args: str, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgestore", *args], capture_output=True, text=True,
                          timeout=timeout_s)


# -- tests ---------------------------------------------------------------------------------


def test_ring_changes_that_cannot_be_made_are_refused_with_4xx(cluster: LocalCluster) -> None:
    before = cli_json(cluster, "cluster", "show")
    taken = before["devices"][0]
    spec = ["--region", "1", "--zone", "9", "--ip", taken["ip"], "--port", str(taken["port"]),
            "--device", taken["device"], "--weight", "1"]
    cluster_file = ["--cluster", str(cluster.data / "cluster.json")]
    for args, code in ((["add-device", *spec], "409"), (["remove-device", "999"], "404"),
                       (["set-weight", "0", "-5"], "400")):
        done = run_cli("cluster", args[0], *cluster_file, *args[1:])
        assert done.returncode == 2 and code in done.stderr, (args, done.stderr)
    # Not an admin: refused before anything is read.
    request = urllib.request.Request(cluster.url(1) + "/_admin/ring/rebalance", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    after = cli_json(cluster, "cluster", "show")
    assert after["version"] == before["version"] and after["devices"] == before["devices"]


def test_join_with_another_clusters_secret_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("not-the-cluster-secret-at-all\n")
    conf = tmp_path / "node.toml"
    conf.write_text('[node]\nid = "stranger"\nlisten = "127.0.0.1:1"\nring = "ring"\n'
                    'cluster_secret_file = "secret"\n\n[[devices]]\nname = "d1"\npath = "d1"\n')
    done = run_cli("serve", "--config", str(conf), "--join", cluster.url(0), timeout_s=60)
    assert done.returncode == 2 and "refused (403)" in done.stderr, done.stderr
    assert not (tmp_path / "ring").exists()


def test_a_node_without_a_ring_is_told_to_join(tmp_path: Path) -> None:
    conf = tmp_path / "node.toml"
    conf.write_text('[node]\nid = "new"\nlisten = "127.0.0.1:1"\nring = "ring"\n'
                    'cluster_secret = "0123456789abcdef0123"\n\n[[devices]]\nname = "d1"\npath = "d1"\n')
    done = run_cli("serve", "--config", str(conf), timeout_s=60)
    assert done.returncode == 2 and "--join URL" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_node_joins_under_load_and_takes_its_share(cluster: LocalCluster) -> None:
    s3 = make_s3(cluster.endpoint, *cluster.credentials)
    before = cli_json(cluster, "cluster", "show")
    new = cluster.add_node(join_index=1)
    new_url = cluster.url(new)
    assert health(new_url)["ring_version"] == before["version"]   # fetched through --join
    # Unassigned, and listed by the cluster's status though the ring does not name it.
    listed = node_status(cluster, new_url)
    assert listed["up"] and [d["in_ring"] for d in listed["devices"]] == [False]
    assert "UNASSIGNED" in cli(cluster, "status")

    with SteadyLoad(cluster.endpoint, cluster.credentials, BUCKETS, "join") as load:
        load.wait_for(12)
        added = cli_json(cluster, "cluster", "add-device", "--region", "1", "--zone", "5", "--ip", "127.0.0.1",
                         "--port", str(port_of(new_url)), "--device", "d1", "--weight", "100")
        assert added["version"] == before["version"] + 1
        load.wait_for(load.acked + 6)
        # Every partition moved at `up`: let min_part_hours count as passed, as an operator
        # who knows replication is complete would.
        started = time.monotonic()
        out = cli(cluster, "cluster", "rebalance", "--pretend-min-part-hours-passed", "--wait",
                  "--timeout", str(CONVERGE_TIMEOUT_S))
        converged_s = time.monotonic() - started
        load.wait_for(load.acked + 6)
    assert "converged" in out.splitlines()[-1], out
    version = int(out.split("ring version ")[1].split(",")[0])
    assert version == added["version"] + 1
    print(f"\njoin: {load.acked} writes acknowledged, {len(load.write_errors)} failed, {load.reads} reads "
          f"({len(load.read_errors)} errors); converged {converged_s:.1f} s after the rebalance")

    urls = [cluster.url(i) for i in range(5)]
    assert wait_for_versions(urls, version, 1) == dict.fromkeys(urls, version)
    joined = node_status(cluster, new_url)["devices"][0]
    assert joined["in_ring"] and joined["primary_partitions"] > 0 and joined["partitions_held"] > 0
    ring = cli_json(cluster, "cluster", "show")
    assert device_of(ring, new_url)["parts"] > 0 and ring["balance"] < 5
    load.check(s3)
    for bucket in BUCKETS:   # the oldest and the newest object of each bucket
        keys = load.keys(bucket)
        assert missing_copies(cluster, bucket, [keys[0], keys[-1]]) == []


def test_a_ring_change_through_one_node_reaches_every_node_by_gossip(cluster: LocalCluster) -> None:
    urls = [n["url"] for n in cluster.info["nodes"]]
    ring = cli_json(cluster, "cluster", "show")
    # Through node 3 with an admin's keys: the node asked hands the new ring to its peers.
    target = device_of(ring, urls[2])
    done = run_cli("cluster", "set-weight", str(target["id"]), str(target["weight"]), "--endpoint", urls[2],
                   "--admin-access-key", cluster.credentials[0], "--admin-secret-key", cluster.credentials[1])
    assert done.returncode == 0, done.stderr
    assert "served by 5 of 5 nodes" in done.stdout, done.stdout
    version = ring["version"] + 1
    assert wait_for_versions(urls, version, 10) == dict.fromkeys(urls, version)

    # An operator edits the ring file of the joined node only (it has a file of its own):
    # that node adopts it, and gossip carries it to every other node.
    joined_ring = Path(cluster.node(4)["config"]).parent / "node5.ring"
    edited = run_cli("ring", "set-weight", str(joined_ring), str(target["id"]), str(target["weight"]))
    assert edited.returncode == 0, edited.stderr
    assert wait_for_versions(urls, version + 1, 30) == dict.fromkeys(urls, version + 1)
    assert cli_json(cluster, "cluster", "show")["version"] == version + 1


def test_a_removed_node_drains_under_load_and_no_copy_is_lost(cluster: LocalCluster) -> None:
    s3 = make_s3(cluster.endpoint, *cluster.credentials)
    secret = secret_of(cluster)
    account = cluster.info["account"]
    leaving = 1
    leaving_url = cluster.url(leaving)
    all_urls = [n["url"] for n in cluster.info["nodes"]]
    assert node_status(cluster, leaving_url)["devices"][0]["partitions_held"] > 0
    ring = cli_json(cluster, "cluster", "show")
    dev_id = device_of(ring, leaving_url)["id"]

    with SteadyLoad(cluster.endpoint, cluster.credentials, BUCKETS, "drain") as load:
        load.wait_for(18)
        # What to watch while the data moves: objects written before the removal, with their blocks.
        watched = []
        for bucket in BUCKETS:
            for key in load.keys(bucket)[:2]:
                blocks = [b["block"] for b in locate(cluster, bucket, key)["blocks"]]
                watched.append((bucket, key, blocks))
        # A write is acknowledged by a quorum: wait until repair made each watched one whole,
        # and say so if it did not (a copy short before the drain is not one the drain lost).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
                min(copies(all_urls, secret, account, *w)) < 3 for w in watched):
            time.sleep(0.5)
        before = {f"{b}/{k}": copies(all_urls, secret, account, b, k, blocks) for b, k, blocks in watched}
        assert all(min(c) >= 3 for c in before.values()), f"not yet whole before the drain: {before}"
        removed = cli_json(cluster, "cluster", "remove-device", str(dev_id))
        assert removed["version"] == ring["version"] + 1
        waiter = subprocess.Popen([sys.executable, "-m", "edgestore", "cluster", "rebalance", "--wait", "--timeout",
                                   str(CONVERGE_TIMEOUT_S), "--cluster", str(cluster.data / "cluster.json")],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        fewest = 3
        samples = 0
        try:
            while waiter.poll() is None and samples < 400:
                for bucket, key, blocks in watched:
                    counts = copies(all_urls, secret, account, bucket, key, blocks)
                    fewest = min(fewest, *counts)
                    assert min(counts) >= 3, f"{bucket}/{key} had only {counts} copies during the drain"
                samples += 1
            out, err = waiter.communicate(timeout=CONVERGE_TIMEOUT_S + 30)
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.communicate()
        assert waiter.returncode == 0, out + err
        load.wait_for(load.acked + 6)
    assert samples > 0 and fewest >= 3
    assert "converged" in out.splitlines()[-1], out
    version = removed["version"] + 1
    print(f"\ndrain: {load.acked} writes acknowledged, {len(load.write_errors)} failed, {load.reads} reads "
          f"({len(load.read_errors)} errors); {samples} copy samples, never fewer than {fewest} copies")

    # The removed node: out of the ring, still up, on the new ring, holding nothing.
    ring = cli_json(cluster, "cluster", "show")
    assert ring["version"] == version and all(d["port"] != port_of(leaving_url) for d in ring["devices"])
    gone = node_status(cluster, leaving_url)
    assert gone["ring_version"] == version
    assert gone["devices"][0]["in_ring"] is False and gone["devices"][0]["partitions_held"] == 0
    staying = [url for url in all_urls if url != leaving_url]
    for bucket in BUCKETS:
        keys = load.keys(bucket)
        assert missing_copies(cluster, bucket, [keys[0], keys[-1]]) == []
    load.check(s3)
    # Forgotten: with the drained node stopped, everything is still there.
    cluster.kill(leaving)
    assert wait_for_versions(staying, version, 1) == dict.fromkeys(staying, version)
    load.check(make_s3(staying[-1], *cluster.credentials), strict=False)


class _FakePeer(http.server.BaseHTTPRequestHandler):
    """A 'peer' that serves whatever ring bytes the test gives it."""
    ring: bytes = b""
    fetches: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).fetches.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.ring)))
        self.end_headers()
        self.wfile.write(self.ring)

    def log_message(self, *args: Any) -> None:
        pass


def announce(url: str, secret: bytes, message: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(message).encode()
    path = "/_internal/_node/ring/announce"
    request = urllib.request.Request(url + path, data=body, method="POST",
                                     headers=signed_headers(secret, "POST", path, body_digest(body)))
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def test_no_node_ever_goes_back_to_an_older_ring(cluster: LocalCluster) -> None:
    """Last: its fake peer stays in the member lists (as down) after the test."""
    secret = secret_of(cluster)
    urls = [n["url"] for n in cluster.info["nodes"] if n["id"] != "node2"]   # node2 was drained and stopped
    joined_ring = Path(cluster.node(4)["config"]).parent / "node5.ring"
    old = joined_ring.read_bytes()
    ring = cli_json(cluster, "cluster", "show")
    dev = ring["devices"][0]
    cli(cluster, "cluster", "set-weight", str(dev["id"]), str(dev["weight"]))
    current = ring["version"] + 1
    assert wait_for_versions(urls, current, 10) == dict.fromkeys(urls, current)

    # An operator copies an old ring file over a node's own: it keeps the newer ring.
    tmp = joined_ring.with_name(".old.tmp")
    tmp.write_bytes(old)
    os.replace(tmp, joined_ring)
    deadline = time.monotonic() + 10   # the node restores its file at its next gossip round
    while time.monotonic() < deadline and builder_from_bytes(joined_ring.read_bytes()).version != current:
        time.sleep(0.2)
    assert builder_from_bytes(joined_ring.read_bytes()).version == current
    assert wait_for_versions(urls, current, 1) == dict.fromkeys(urls, current)

    # A signed peer that claims a newer version but serves an older ring, or a newer one
    # whose payload does not match its checksum: fetched, checked, refused.
    newer = builder_from_bytes(old)
    newer.set_weight(dev["id"], dev["weight"])
    for _ in range(current + 5 - newer.version):
        newer.set_weight(dev["id"], dev["weight"])
    document = json.loads(gzip.decompress(builder_to_bytes(newer)))
    document["payload"]["devices"][0]["weight"] = 12345.0
    tampered = gzip.compress(json.dumps(document).encode())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakePeer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for served in (old, tampered):
            _FakePeer.ring, _FakePeer.fetches = served, []
            answer = announce(urls[0], secret, {"url": fake, "node": "liar", "version": current + 5,
                                                "checksum": "sha256:" + "f" * 64, "members": []})
            assert _FakePeer.fetches == ["/_internal/_node/ring"]
            assert answer["version"] == current
        # A peer behind this node is not even fetched from.
        _FakePeer.fetches = []
        answer = announce(urls[0], secret, {"url": fake, "node": "behind", "version": 1,
                                            "checksum": "sha256:0", "members": []})
        assert answer["version"] == current and _FakePeer.fetches == []
    finally:
        server.shutdown()
        server.server_close()
    assert wait_for_versions(urls, current, 1) == dict.fromkeys(urls, current)
