"""A real local cluster for tests: `edgestore up` in a temporary directory, plus the
means to kill and restart single nodes the way an operator (or a power cut) would."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port_range(count: int) -> int:
    """A base port such that base..base+count-1 are all free on 127.0.0.1 right now. Taken
    below the ephemeral range, where the kernel does not hand ports to outgoing
    connections (ours, by the hundred) between this check and the nodes' bind."""
    low, high = _ephemeral_range()
    top = low - count if low > 12000 + count else 65000 - count
    bottom = 10000 if low > 12000 + count else high + 1
    for _ in range(200):
        base = random.randint(bottom, top)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range found")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class PortTaken(RuntimeError):
    """A node could not bind its port: something else took it after we chose it."""


class LocalCluster:
    def __init__(self, data: Path, nodes: int = 4, replicas: int = 3, extra: list[str] | None = None) -> None:
        self.data = data
        self.nodes = nodes
        self.replicas = replicas
        self.extra = extra or []
        self.port = free_port_range(nodes * (2 if "--tls" in self.extra else 1))
        self.up_proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.restarted: dict[int, subprocess.Popen[bytes]] = {}

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> LocalCluster:
        """Start `edgestore up`; if a port was taken between our check and the nodes' bind
        (another process on this machine), start afresh on other ports, a bounded number of times."""
        for attempt in range(3):
            try:
                return self._start_once()
            except PortTaken:
                if attempt == 2:
                    raise
                self.stop()
                shutil.rmtree(self.data)  # nothing was acknowledged yet: a clean slate
                self.port = free_port_range(self.nodes * (2 if "--tls" in self.extra else 1))
        raise AssertionError("unreachable")

    def _start_once(self) -> LocalCluster:
        self.data.mkdir(parents=True, exist_ok=True)
        cluster_json = self.data / "cluster.json"
        cluster_json.unlink(missing_ok=True)
        self.up_log = open(self.data / "up.log", "ab")
        self.up_proc = subprocess.Popen(
            [sys.executable, "-m", "edgestore", "up", "--nodes", str(self.nodes), "--replicas",
             str(self.replicas), "--data", str(self.data), "--port", str(self.port), *self.extra],
            stdout=self.up_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not cluster_json.exists():
            if self.up_proc.poll() is not None:
                if self._port_was_taken():
                    raise PortTaken(self.log_tail())
                raise RuntimeError(f"edgestore up exited {self.up_proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"edgestore up did not come up: {self.log_tail()}")
            time.sleep(0.1)
        self.info = json.loads(cluster_json.read_text())
        return self

    def stop(self) -> None:
        for proc in self.restarted.values():
            _terminate(proc)
        self.restarted.clear()
        if self.up_proc is not None:
            _terminate(self.up_proc)
            self.up_proc = None
        # Nodes are children of `up`; make sure none outlives the test even if `up` died.
        for node in self.info.get("nodes", []):
            pid = node.get("pid")
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if hasattr(self, "up_log"):
            self.up_log.close()

    def _port_was_taken(self) -> bool:
        return any("address already in use" in path.read_text(errors="replace")
                   for path in (self.data / "logs").glob("*.log"))

    def log_tail(self, lines: int = 40) -> str:
        text = (self.data / "up.log").read_text(errors="replace") if (self.data / "up.log").exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # -- what tests use ----------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return str(self.info["s3_endpoint"])

    @property
    def credentials(self) -> tuple[str, str]:
        return self.info["access_key"], self.info["secret_key"]

    def node(self, index: int) -> dict[str, Any]:
        return dict(self.info["nodes"][index])

    def url(self, index: int) -> str:
        return str(self.info["nodes"][index]["url"])

    def pid(self, index: int) -> int:
        if index in self.restarted:
            return self.restarted[index].pid
        return int(self.info["nodes"][index]["pid"])

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        pid = self.pid(index)
        os.kill(pid, sig)
        self._wait_dead(index, pid)

    def _wait_dead(self, index: int, pid: int) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            if index in self.restarted:
                self.restarted[index].poll()  # reap a node this cluster restarted itself
            time.sleep(0.05)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Signal every node at once, then wait for each to die: killed one after another
        (`kill` waits for each), the last ones could still acknowledge writes through
        handoffs standing in for the first — a different scenario from a site-wide crash."""
        pids = [self.pid(index) for index in range(self.nodes)]
        for pid in pids:
            os.kill(pid, sig)
        for index, pid in enumerate(pids):
            self._wait_dead(index, pid)

    def restart(self, index: int, wrapper: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        """Start node `index` alone from its recorded command (under `wrapper`, which must
        exec the command rather than fork it, or stopping it would orphan the node)."""
        node = self.info["nodes"][index]
        log = open(node["log"], "ab")
        self.restarted[index] = subprocess.Popen([*(wrapper or []), *node["command"]], stdout=log,
                                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                 env={**os.environ, **(env or {})})
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(node["health_url"]):
            if self.restarted[index].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node {index} did not restart")
            time.sleep(0.1)


    def add_node(self, join_index: int = 0, gossip_interval_s: float = 1.0) -> int:
        """Start one more node next to the cluster, as an operator adds a Pi: its own config,
        ring file, data directory and port, started with `serve --join` against node
        `join_index`. Its devices are in no ring until `cluster add-device`; it is stopped
        with the cluster. Returns its index (for url/node/kill/restart)."""
        index = len(self.info["nodes"])
        name = f"node{index + 1}"
        port = free_port_range(1)
        conf = self.data / "conf" / f"{name}.toml"
        text = (f'[node]\nid = "{name}"\nlisten = "127.0.0.1:{port}"\nring = "{name}.ring"\n'
                f'cluster_secret_file = "{self.data / "secret"}"\n\n'
                f'[[devices]]\nname = "d1"\npath = "{self.data / name / "d1"}"\n\n'
                f'[gossip]\ninterval_s = {float(gossip_interval_s)}\n')
        if "--repair-interval" in self.extra:
            text += f'\n[repair]\ninterval_s = {float(self.extra[self.extra.index("--repair-interval") + 1])}\n'
        conf.write_text(text)
        (self.data / name).mkdir(exist_ok=True)
        url = f"http://127.0.0.1:{port}"
        self.info["nodes"].append({
            "id": name, "url": url, "pid": None, "data_dir": str(self.data / name),
            "health_url": f"{url}/_admin/health", "config": str(conf), "log": str(self.data / "logs" / f"{name}.log"),
            "command": [sys.executable, "-m", "edgestore", "serve", "--config", str(conf),
                        "--join", self.url(join_index)],
        })
        self.restart(index)
        return index


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
