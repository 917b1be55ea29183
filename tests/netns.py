"""A cluster whose nodes each run in their own network namespace, so a test can cut one
off from its peers for real (Linux, root).

Every node namespace has two links to the host namespace:

    cluster net  10.77.X.0/24: one veth per node into a host bridge. The ring names these
                 addresses, so all node-to-node traffic crosses this bridge.
    client net   10.78.X.0/24: one veth per node into a second host bridge, which the test
                 (and the `edgestore` commands) use to reach each node.

Cutting a node takes the host end of its cluster-net veth down — a pulled cable between it
and its peers — while clients on its side can still reach it through the client net. The
subnet byte X is picked unused at start; names carry a random tag; every link, bridge and
namespace made is removed at stop, in reverse order, also after a failed start.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clusterlib import healthy
from edgestore.ring import RingBuilder, save_builder

from edgestore.cli.up import _ensure_user

PORT = 8080             # every node has its own namespace, hence its own ports
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
HEAL_TIMEOUT_S = 20.0


def netns_unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "needs the ip command (apt-get install iproute2)"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _tc(*args: str) -> None:
    done = subprocess.run(["tc", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"tc {' '.join(args)}: {done.stderr.strip()}")


def _free_subnet_byte() -> int:
    """X such that neither 10.77.X.0/24 nor 10.78.X.0/24 is in use on this host."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=30).stdout
    used += subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, timeout=30).stdout
    taken = [x for x in range(16, 250) if f"10.77.{x}." in used or f"10.78.{x}." in used]
    free = [x for x in range(16, 250) if x not in taken]
    return free[secrets.randbelow(len(free))]


class NetnsCluster:
    """`nodes` nodes, one device each, each its own zone and namespace; replicas as asked.
    Has what tests/opslib.py uses of a LocalCluster (data with cluster.json, url, node)."""

    def __init__(self, data: Path, nodes: int = 4, replicas: int = 3,
                 timeouts: dict[str, float] | None = None) -> None:
        """`timeouts`: [timeouts] settings of every node, over this file's own."""
        self.timeouts = {"connect_s": 1.0, "request_s": 8.0, **(timeouts or {})}
        self.data = data
        self.nodes = nodes
        self.replicas = replicas
        self.tag = secrets.token_hex(2)
        self.net = _free_subnet_byte()
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.info: dict[str, Any] = {}
        self._undo: list[list[str]] = []   # ip commands that remove what was made, newest last

    # -- names and addresses -----------------------------------------------------------

    def namespace(self, index: int) -> str:
        return f"es{self.tag}n{index}"

    def cluster_ip(self, index: int) -> str:
        return f"10.77.{self.net}.{index + 1}"

    def client_ip(self, index: int) -> str:
        return f"10.78.{self.net}.{index + 1}"

    def _host_link(self, net: str, index: int) -> str:
        return f"es{self.tag}{net}{index}"     # at most 10 characters; Linux allows 15

    def url(self, index: int) -> str:
        return f"http://{self.client_ip(index)}:{PORT}"

    def node(self, index: int) -> dict[str, Any]:
        return dict(self.info["nodes"][index])

    @property
    def credentials(self) -> tuple[str, str]:
        return self.info["access_key"], self.info["secret_key"]

    # -- the network -------------------------------------------------------------------

    def _make_network(self) -> None:
        for net, prefix in (("c", "10.77"), ("k", "10.78")):
            bridge = f"es{self.tag}{net}br"
            _ip("link", "add", bridge, "type", "bridge")
            self._undo.append(["link", "del", bridge])
            _ip("addr", "add", f"{prefix}.{self.net}.254/24", "dev", bridge)
            _ip("link", "set", bridge, "up")
        for index in range(self.nodes):
            ns = self.namespace(index)
            _ip("netns", "add", ns)
            self._undo.append(["netns", "del", ns])
            _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
            for net, inside, address in (("c", "cluster0", self.cluster_ip(index)),
                                         ("k", "client0", self.client_ip(index))):
                host = self._host_link(net, index)
                _ip("link", "add", host, "type", "veth", "peer", "name", inside, "netns", ns)
                # Removed explicitly: a namespace outlives `ip netns del` while anything
                # (a closing socket) still refers to it, and its veths with it.
                self._undo.append(["link", "del", host])
                _ip("link", "set", host, "master", f"es{self.tag}{net}br", "up")
                _ip("netns", "exec", ns, "ip", "addr", "add", f"{address}/24", "dev", inside)
                _ip("netns", "exec", ns, "ip", "link", "set", inside, "up")

    def shape(self, index: int, mbit: int, *, inbound: bool = True, outbound: bool = True) -> None:
        """Limit node `index`'s cluster-net link (which the client uses too) to `mbit`,
        each way asked; the limit goes with the link when the cluster stops."""
        rule = ["root", "tbf", "rate", f"{mbit}mbit", "burst", "64kb", "latency", "50ms"]
        if inbound:   # the host end's egress is what reaches the node
            _tc("qdisc", "replace", "dev", self._host_link("c", index), *rule)
        if outbound:
            _tc("-n", self.namespace(index), "qdisc", "replace", "dev", "cluster0", *rule)

    def cut(self, index: int) -> None:
        """Disconnect node `index` from its peers (its clients still reach it)."""
        _ip("link", "set", self._host_link("c", index), "down")

    def heal(self, index: int) -> None:
        """Reconnect node `index`, and return once it and every peer can open connections to each other
        over the cluster net (its neighbour entries went stale during the cut, and the nodes' 1 s
        connect timeout is shorter than a loaded host may take to resolve them again)."""
        _ip("link", "set", self._host_link("c", index), "up")
        for peer in range(self.nodes):
            if peer != index:
                self._wait_connectable(peer, self.cluster_ip(index))
                self._wait_connectable(index, self.cluster_ip(peer))

    def _wait_connectable(self, index: int, address: str) -> None:
        """From inside node `index`'s namespace, retry a TCP connect to address:PORT until one
        succeeds, for at most HEAL_TIMEOUT_S."""
        probe = ("import socket, sys, time\n"
                 "deadline = time.monotonic() + float(sys.argv[3])\n"
                 "while True:\n"
                 "    try:\n"
                 "        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n"
                 "        break\n"
                 "    except OSError:\n"
                 "        if time.monotonic() > deadline: sys.exit('unreachable')\n"
                 "        time.sleep(0.1)\n")
        done = subprocess.run(["ip", "netns", "exec", self.namespace(index), sys.executable, "-c", probe, address,
                               str(PORT), str(HEAL_TIMEOUT_S)],
                              capture_output=True, text=True, timeout=HEAL_TIMEOUT_S + 10)
        if done.returncode != 0:
            raise RuntimeError(f"node {index} cannot reach {address}:{PORT} after the heal: {done.stderr.strip()}")

    # -- the nodes ---------------------------------------------------------------------

    def _write_cluster(self) -> None:
        (self.data / "conf").mkdir(parents=True, exist_ok=True)
        (self.data / "logs").mkdir(exist_ok=True)
        secret = self.data / "secret"
        secret.write_text(secrets.token_hex(32) + "\n")
        secret.chmod(0o600)
        builder = RingBuilder(part_power=8, replicas=self.replicas, min_part_hours=1)
        for index in range(self.nodes):
            builder.add_device(region=1, zone=index + 1, ip=self.cluster_ip(index), port=PORT, device="d1",
                               weight=100.0)
        builder.rebalance(seed=1)
        save_builder(builder, self.data / "cluster.ring")
        self.info = {"s3_endpoint": self.url(0), "region": "us-east-1", "account": "default", "user": "admin",
                     "access_key": "ES" + secrets.token_hex(9).upper(), "secret_key": secrets.token_urlsafe(30),
                     "ring": str(self.data / "cluster.ring"), "secret_file": str(secret), "nodes": []}
        for index in range(self.nodes):
            conf = self.data / "conf" / f"node{index + 1}.toml"
            # Listen on every address of the namespace (cluster and client nets); the ring
            # names the cluster-net one. Background repair only when the test asks for it.
            # A request over a kept-alive connection to a cut-off peer waits for its whole
            # request timeout: shorter than the default 30 s, so a test's refusals are quick.
            conf.write_text(
                f'[node]\nid = "node{index + 1}"\nlisten = "0.0.0.0:{PORT}"\n'
                f'advertise = "{self.cluster_ip(index)}:{PORT}"\n'
                f'ring = "{self.data / "cluster.ring"}"\ncluster_secret_file = "{secret}"\n\n'
                f'[[devices]]\nname = "d1"\npath = "{self.data / f"node{index + 1}" / "d1"}"\n\n'
                '[timeouts]\n' + ''.join(f'{key} = {float(value)}\n' for key, value in self.timeouts.items())
                + '\n[repair]\ninterval_s = 3600.0\n')
            self.info["nodes"].append({
                "id": f"node{index + 1}", "url": self.url(index), "pid": None,
                "data_dir": str(self.data / f"node{index + 1}"),
                "health_url": self.url(index) + "/_admin/health", "config": str(conf),
                "log": str(self.data / "logs" / f"node{index + 1}.log"),
                "command": ["ip", "netns", "exec", self.namespace(index), sys.executable, "-m", "edgestore",
                            "serve", "--config", str(conf)],
            })

    def start(self) -> NetnsCluster:
        try:
            self._make_network()
            self._write_cluster()
            for index in range(self.nodes):
                self._start_node(index)
            deadline = time.monotonic() + START_TIMEOUT_S
            for index in range(self.nodes):
                while not healthy(self.node(index)["health_url"]):
                    if self.procs[index].poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"node {index} did not start: {self.log_tail(index)}")
                    time.sleep(0.1)
            _ensure_user(self.info, (self.data / "secret").read_text().strip().encode())
            (self.data / "cluster.json").write_text(json.dumps(self.info, indent=2) + "\n")
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> NetnsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_node(self, index: int) -> None:
        node = self.info["nodes"][index]
        with open(node["log"], "ab") as log:
            # `ip netns exec` execs the command: the pid is the node's own.
            self.procs[index] = subprocess.Popen(node["command"], stdout=log, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, start_new_session=True)
        node["pid"] = self.procs[index].pid

    def log_tail(self, index: int, lines: int = 30) -> str:
        path = Path(self.info["nodes"][index]["log"])
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        errors = []
        while self._undo:
            command = self._undo.pop()
            try:
                _ip(*command)
            except RuntimeError as exc:
                errors.append(str(exc))
        if errors:
            raise RuntimeError(f"network clean-up left something behind: {errors}")
