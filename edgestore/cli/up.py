"""`edgestore up`: a local multi-node cluster in one command.

Starts N node processes on 127.0.0.1 (ports BASE..BASE+N-1), each its own zone with one
device, as OpenStack Swift's all-in-one setup does. The first run builds the ring, the
cluster secret, one config file per node and a default admin user; later runs on the
same directory reuse all of them and the data. Runs until Ctrl-C or SIGTERM, then stops
every node cleanly.

Layout of the data directory:
    cluster.json          endpoints, credentials, nodes (read by the other commands)
    cluster.ring          the ring (builder state included)
    secret                the cluster secret (mode 600)
    conf/nodeN.toml       the config that `edgestore serve` runs node N from
    nodeN/                node N's data_dir: its stored data only
    logs/nodeN.log        node N's log
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from edgestore.cli import CliError
from edgestore.cluster.rpc import EMPTY_DIGEST, body_digest, signed_headers
from edgestore.config import MAX_GROUP_COMMIT_WINDOW_MS, NodeConfig
from edgestore.ring import RingBuilder, save_builder

DEFAULT_ACCOUNT = "default"
DEFAULT_USER = "admin"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
PR_SET_PDEATHSIG = 1


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("up", help="start a local multi-node cluster (until Ctrl-C)")
    p.add_argument("--nodes", type=int, default=None, help="node processes to run (default 4)")
    p.add_argument("--replicas", type=int, default=3, help="replicas of every object (default 3)")
    p.add_argument("--data", type=Path, default=Path("edgestore-data"),
                   help="data directory (default ./edgestore-data)")
    p.add_argument("--port", type=int, default=8080, help="first node's port (default 8080)")
    p.add_argument("--part-power", type=int, default=10, help="ring partition power for a new cluster")
    p.add_argument("--tls", action="store_true",
                   help="also serve HTTPS, on ports BASE+N..BASE+2N-1, with a self-signed certificate "
                        "(needs the openssl command); cluster.json names it as ca_file")
    p.add_argument("--repair-interval", type=float, default=None, metavar="SECONDS",
                   help="seconds between anti-entropy passes, for a new cluster (default 30)")
    p.add_argument("--group-commit-window-ms", type=float, default=None, metavar="MS",
                   help="[store] group_commit_window_ms of every node, for a new cluster: how long a "
                        "metadata write may wait to share its commit with overlapping ones (0: commit "
                        f"at once; default {NodeConfig.group_commit_window_ms:g})")
    p.set_defaults(func=up)


def _node_config(data: Path, index: int, port: int, tls_port: int | None, repair_interval_s: float | None,
                 group_commit_window_ms: float | None = None) -> str:
    text = (
        f'# Node {index} of the local cluster made by `edgestore up`.\n'
        f'[node]\nid = "node{index}"\nlisten = "127.0.0.1:{port}"\n'
        f'ring = "{data / "cluster.ring"}"\ncluster_secret_file = "{data / "secret"}"\n\n'
        f'[[devices]]\nname = "d1"\npath = "{data / f"node{index}" / "d1"}"\n\n'
        '# Virtual-hosted-style requests: http://BUCKET.localhost:PORT/KEY (curl resolves *.localhost).\n'
        '[s3]\ndomain = "localhost"\n'
    )
    if group_commit_window_ms is not None:
        text += f'\n[store]\ngroup_commit_window_ms = {float(group_commit_window_ms)}\n'
    if repair_interval_s is not None:
        text += f'\n[repair]\ninterval_s = {float(repair_interval_s)}\n'
    if tls_port is not None:
        text += (f'\n[tls]\nlisten = "127.0.0.1:{tls_port}"\ncert_file = "{data / "tls" / "cert.pem"}"\n'
                 f'key_file = "{data / "tls" / "key.pem"}"\n')
    return text


def _make_certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 and localhost, made with the openssl command."""
    directory.mkdir(exist_ok=True)
    cert = directory / "cert.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
               "-subj", "/CN=edgestore local cluster", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
               "-keyout", str(directory / "key.pem"), "-out", str(cert)]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        raise CliError("--tls needs the openssl command (apt-get install openssl)") from None
    except subprocess.CalledProcessError as exc:
        raise CliError(f"openssl failed: {exc.stderr.decode(errors='replace').strip()}") from None
    (directory / "key.pem").chmod(0o600)
    return cert


def _create(data: Path, nodes: int, replicas: int, base_port: int, part_power: int,
            tls: bool, repair_interval_s: float | None, group_commit_window_ms: float | None = None) -> dict[str, Any]:
    if nodes < 1 or not 1 <= replicas <= nodes:
        raise CliError(f"need 1 <= --replicas <= --nodes (got {replicas} replicas, {nodes} nodes)")
    if group_commit_window_ms is not None and not 0 <= group_commit_window_ms <= MAX_GROUP_COMMIT_WINDOW_MS:
        raise CliError(f"--group-commit-window-ms must be from 0 to {MAX_GROUP_COMMIT_WINDOW_MS:g} "
                       f"(got {group_commit_window_ms:g})")
    if not 1 <= base_port <= 65535 - (2 if tls else 1) * nodes + 1:
        raise CliError(f"--port {base_port} leaves no room for {nodes} nodes")
    (data / "conf").mkdir(parents=True, exist_ok=True)
    (data / "logs").mkdir(exist_ok=True)
    secret_path = data / "secret"
    secret_path.write_text(secrets.token_hex(32) + "\n")
    secret_path.chmod(0o600)
    builder = RingBuilder(part_power=part_power, replicas=replicas, min_part_hours=1)
    for i in range(nodes):
        builder.add_device(region=1, zone=i + 1, ip="127.0.0.1", port=base_port + i,
                           device="d1", weight=100.0)
    builder.rebalance(seed=1)
    save_builder(builder, data / "cluster.ring")
    state: dict[str, Any] = {
        "s3_endpoint": f"http://127.0.0.1:{base_port}",
        "region": "us-east-1",
        "account": DEFAULT_ACCOUNT,
        "user": DEFAULT_USER,
        "access_key": "ES" + secrets.token_hex(9).upper(),
        "secret_key": secrets.token_urlsafe(30),
        "ring": str(data / "cluster.ring"),
        "secret_file": str(secret_path),
        "nodes": [],
    }
    if tls:
        state["ca_file"] = str(_make_certificate(data / "tls"))
        state["s3_https_endpoint"] = f"https://127.0.0.1:{base_port + nodes}"
    for i in range(1, nodes + 1):
        conf = data / "conf" / f"node{i}.toml"
        port = base_port + i - 1
        tls_port = base_port + nodes + i - 1 if tls else None
        conf.write_text(_node_config(data, i, port, tls_port, repair_interval_s, group_commit_window_ms))
        state["nodes"].append({
            "id": f"node{i}",
            "url": f"http://127.0.0.1:{port}",
            "pid": None,
            "data_dir": str(data / f"node{i}"),
            "health_url": f"http://127.0.0.1:{port}/_admin/health",
            "config": str(conf),
            "log": str(data / "logs" / f"node{i}.log"),
            "command": [sys.executable, "-m", "edgestore", "serve", "--config", str(conf)],
        })
        if tls_port is not None:
            state["nodes"][-1]["https_url"] = f"https://127.0.0.1:{tls_port}"
    return state


def _die_with_parent() -> None:
    """In a node process before exec: get SIGTERM if `up` itself dies (even by SIGKILL),
    so no node outlives the command that started it. Linux only; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_healthy(nodes: list[dict[str, Any]], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    waiting = list(zip(nodes, procs, strict=True))
    while waiting and time.monotonic() < deadline:
        for node, proc in list(waiting):
            if proc.poll() is not None:
                raise CliError(f"{node['id']} exited with status {proc.returncode}; see {node['log']}")
            if _healthy(node["health_url"]):
                waiting.remove((node, proc))
        if waiting:
            time.sleep(0.1)
    if waiting:
        raise CliError(f"{', '.join(n['id'] for n, _ in waiting)} did not start within {START_TIMEOUT_S:.0f} s")


def _ensure_user(state: dict[str, Any], secret: bytes) -> None:
    """Create (or re-create, after a wipe) the default admin user, signed with the secret."""
    body = json.dumps({"account": state["account"], "user": state["user"], "admin": True,
                       "access_key": state["access_key"], "secret_key": state["secret_key"]}).encode()
    path = "/_admin/users"
    headers = {"Content-Type": "application/json"}
    headers.update(signed_headers(secret, "POST", path, body_digest(body) if body else EMPTY_DIGEST))
    request = urllib.request.Request(state["s3_endpoint"] + path, data=body, method="POST", headers=headers)
    last_error = ""
    for _ in range(20):  # a just-started cluster may not have every peer listening yet
        try:
            with urllib.request.urlopen(request, timeout=10):
                return
        except urllib.error.HTTPError as exc:
            last_error = f"{exc.code} {exc.read().decode(errors='replace').strip()}"
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.5)
    raise CliError(f"could not create the default user: {last_error}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _print_banner(state: dict[str, Any], data: Path) -> None:
    print(f"edgestore: {len(state['nodes'])} nodes up, data in {data}")
    for node in state["nodes"]:
        print(f"  {node['id']}  {node['url']}  (pid {node['pid']}, log {node['log']})")
    print(f"\nS3 endpoint: {state['s3_endpoint']}  (every node serves S3; region {state['region']})")
    if "s3_https_endpoint" in state:
        print(f"HTTPS:       {state['s3_https_endpoint']}  (self-signed: trust {state['ca_file']})")
    print(f"access key:  {state['access_key']}\nsecret key:  {state['secret_key']}")
    print(f"\nTry:  AWS_ACCESS_KEY_ID={state['access_key']} AWS_SECRET_ACCESS_KEY={state['secret_key']} "
          f"aws --endpoint-url {state['s3_endpoint']} s3 mb s3://my-bucket")
    print(f"Cluster file: {data / 'cluster.json'}\nPress Ctrl-C to stop every node.", flush=True)


def up(args: argparse.Namespace) -> int:
    data: Path = args.data.resolve()
    state_path = data / "cluster.json"
    if state_path.exists():
        try:
            state = json.loads(state_path.read_text())
        except ValueError as exc:
            raise CliError(f"{state_path} is damaged: {exc}") from exc
        if args.nodes is not None and args.nodes != len(state["nodes"]):
            raise CliError(f"{data} holds a {len(state['nodes'])}-node cluster; "
                           f"use another --data for a {args.nodes}-node one")
        if args.group_commit_window_ms is not None:
            # Not applied silently to nodes whose configs may have been edited since.
            raise CliError(f"--group-commit-window-ms is for a new cluster; for the one in {data}, set "
                           "[store] group_commit_window_ms in its conf/nodeN.toml files")
    else:
        nodes = 4 if args.nodes is None else args.nodes
        state = _create(data, nodes, args.replicas, args.port, args.part_power, args.tls, args.repair_interval,
                        args.group_commit_window_ms)
    secret = (data / "secret").read_text().strip().encode()
    lock = _lock_data_dir(data)

    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for node in state["nodes"]:
            Path(node["data_dir"]).mkdir(parents=True, exist_ok=True)
            with open(node["log"], "ab") as log:
                proc = subprocess.Popen(node["command"], stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=_die_with_parent)
            procs.append(proc)
            node["pid"] = proc.pid
        _wait_healthy(state["nodes"], procs)
        _ensure_user(state, secret)
        tmp = state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, state_path)
        _print_banner(state, data)
        exited: set[int] = set()
        while not stopping:
            time.sleep(0.2)
            for node, proc in zip(state["nodes"], procs, strict=True):
                if proc.poll() is not None and proc.pid not in exited:
                    exited.add(proc.pid)
                    print(f"edgestore: {node['id']} exited with status {proc.returncode}; "
                          f"restart it with: {' '.join(node['command'])}", file=sys.stderr, flush=True)
    finally:
        print("edgestore: stopping nodes", file=sys.stderr, flush=True)
        _stop(procs)
        lock.close()
    return 0


def _lock_data_dir(data: Path) -> IO[str]:
    """Hold DIR/up.lock for as long as this `up` runs, and refuse to start a second
    cluster on a directory whose nodes are already serving (from any process)."""
    lock = open(data / "up.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise CliError(f"another `edgestore up` is running on {data}; stop it first") from None
    state = json.loads((data / "cluster.json").read_text()) if (data / "cluster.json").exists() else {}
    serving = [node["id"] for node in state.get("nodes", []) if _healthy(node["health_url"])]
    if serving:
        lock.close()
        raise CliError(f"{', '.join(serving)} of the cluster in {data} already serving; stop them first")
    return lock

