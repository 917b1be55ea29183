"""The operator's commands on real processes: `edgestore up` (its cluster.json, reuse of a data
directory, refusals, SIGTERM/SIGINT), `edgestore user create`, `edgestore serve --config` errors, and a
node brought back with the `command` recorded for it in cluster.json."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from clusterlib import LocalCluster, free_port_range, healthy
from conftest import make_s3

CLI_TIMEOUT_S = 60.0
UP_EXIT_TIMEOUT_S = 30.0  # `up` gives its nodes 15 s to stop before it kills them
VENV_BIN = Path(sys.executable).parent


def edgestore_argv() -> list[str]:
    script = shutil.which("edgestore", path=str(VENV_BIN))
    return [script] if script else [sys.executable, "-m", "edgestore"]


def edgestore(*args: str, cwd: Path | None = None, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*edgestore_argv(), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def assert_one_line_error(result: subprocess.CompletedProcess[str], command: str, *needles: str) -> str:
    """Exit status 2 and exactly one line on stderr, `edgestore COMMAND: ...`, naming the problem."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"edgestore {command}: "), lines[0]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie is dead for our purposes
    except OSError:
        return False


def wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """The pids still alive after waiting up to timeout_s for all of them to go."""
    deadline = time.monotonic() + timeout_s
    alive = [p for p in pids if pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if pid_alive(p)]
    return alive


def status_of(exc: ClientError) -> tuple[int, str]:
    return int(exc.response["ResponseMetadata"]["HTTPStatusCode"]), str(exc.response["Error"]["Code"])


def inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def start_on_existing_data(local: LocalCluster) -> None:
    """`edgestore up` on a data directory that already holds a cluster, for a LocalCluster.

    LocalCluster.start() deletes cluster.json before it runs `up` (so that it can wait for a
    fresh one), and without cluster.json `up` makes a brand-new cluster: new secret, ring and
    keys. This keeps cluster.json and waits for `up` to replace it (a new inode: `up` writes a
    temporary file and renames it over the old one once every node is healthy)."""
    cluster_json = local.data / "cluster.json"
    old = inode(cluster_json)
    assert old is not None, "nothing to reuse"
    local.up_log = open(local.data / "up.log", "ab")
    local.up_proc = subprocess.Popen(
        [sys.executable, "-m", "edgestore", "up", "--nodes", str(local.nodes), "--replicas",
         str(local.replicas), "--data", str(local.data), "--port", str(local.port), *local.extra],
        stdout=local.up_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 90.0
    while inode(cluster_json) in (None, old):
        if local.up_proc.poll() is not None:
            raise RuntimeError(f"edgestore up exited {local.up_proc.returncode}: {local.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"edgestore up did not come up: {local.log_tail()}")
        time.sleep(0.1)
    local.info = json.loads(cluster_json.read_text())


def run_up_expecting_refusal(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs `edgestore up --data DATA ARGS`; if it starts a cluster instead of refusing (it
    (re)writes cluster.json), stops it with SIGTERM so that nothing outlives the test."""
    cluster_json = data / "cluster.json"
    before = inode(cluster_json)
    proc = subprocess.Popen([*edgestore_argv(), "up", "--data", str(data), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + UP_EXIT_TIMEOUT_S
        while proc.poll() is None and inode(cluster_json) == before and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=UP_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


# -- cluster.json --------------------------------------------------------------------------


def test_cluster_json_describes_the_running_cluster(cluster: LocalCluster) -> None:
    info = json.loads((cluster.data / "cluster.json").read_text())
    assert info["s3_endpoint"].startswith("http://127.0.0.1:")
    assert info["access_key"] and info["secret_key"]
    assert len(info["nodes"]) == cluster.nodes
    assert info["s3_endpoint"] in [n["url"] for n in info["nodes"]]
    data_dirs = []
    for node in info["nodes"]:
        assert {"id", "url", "pid", "data_dir", "health_url", "command"} <= set(node), node
        assert node["url"].startswith("http://127.0.0.1:")
        assert node["health_url"].startswith(node["url"] + "/")
        with urllib.request.urlopen(node["health_url"], timeout=5) as response:
            assert response.status == 200
            health = json.loads(response.read())
        assert health.get("node", node["id"]) == node["id"]
        assert isinstance(node["pid"], int) and pid_alive(node["pid"]), node
        command = node["command"]
        assert isinstance(command, list) and all(isinstance(a, str) for a in command)
        assert command[-3:-1] == ["serve", "--config"], command
        assert Path(command[-1]).is_file(), command
        # The pid recorded is the process running that very command.
        with open(f"/proc/{node['pid']}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[:-1] == [a.encode() for a in command]
        assert Path(node["data_dir"]).is_dir(), node
        data_dirs.append(Path(node["data_dir"]).resolve())
    assert len(set(data_dirs)) == len(data_dirs)
    assert len({n["id"] for n in info["nodes"]}) == len(info["nodes"])
    assert len({n["url"] for n in info["nodes"]}) == len(info["nodes"])
    # The default keys work against every node.
    for node in info["nodes"]:
        make_s3(node["url"], info["access_key"], info["secret_key"]).list_buckets()


# -- edgestore user create -----------------------------------------------------------------


def create_user(cluster: LocalCluster, account: str, user: str, *extra: str) -> dict[str, Any]:
    result = edgestore("user", "create", account, user, "--json", "--cluster", str(cluster.data / "cluster.json"),
                       *extra)
    assert result.returncode == 0, result.stderr
    created: dict[str, Any] = json.loads(result.stdout)
    assert created["account"] == account and created["user"] == user
    assert created["access_key"] and created["secret_key"]
    return created


def test_user_create_issues_working_keys_private_to_the_account(cluster: LocalCluster) -> None:
    admin = make_s3(cluster.endpoint, *cluster.credentials)
    tag = os.getpid()
    admin.create_bucket(Bucket=f"admins-{tag}")
    admin.put_object(Bucket=f"admins-{tag}", Key="secret.txt", Body=b"for the default account")

    alice = create_user(cluster, f"farm{tag}", "alice")
    assert alice["access_key"] != cluster.credentials[0]
    s3 = make_s3(cluster.endpoint, alice["access_key"], alice["secret_key"])
    s3.create_bucket(Bucket=f"alices-{tag}")
    s3.put_object(Bucket=f"alices-{tag}", Key="hello", Body=b"from alice")
    assert s3.get_object(Bucket=f"alices-{tag}", Key="hello")["Body"].read() == b"from alice"
    # Any node knows the new user.
    other = make_s3(cluster.url(cluster.nodes - 1), alice["access_key"], alice["secret_key"])
    assert other.get_object(Bucket=f"alices-{tag}", Key="hello")["Body"].read() == b"from alice"
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [f"alices-{tag}"]

    # Alice cannot touch the default account's bucket ...
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("get_object", {"Key": "secret.txt"}), ("list_objects_v2", {}),
        ("put_object", {"Key": "planted", "Body": b"x"}),
    ]
    for operation, params in attempts:
        with pytest.raises(ClientError) as exc:
            getattr(s3, operation)(Bucket=f"admins-{tag}", **params)
        assert status_of(exc.value) == (403, "AccessDenied"), operation
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=f"admins-{tag}")
    assert status_of(exc.value) == (409, "BucketAlreadyExists")
    assert [o["Key"] for o in admin.list_objects_v2(Bucket=f"admins-{tag}")["Contents"]] == ["secret.txt"]
    # ... and the default user does not see Alice's bucket among its own.
    assert f"alices-{tag}" not in [b["Name"] for b in admin.list_buckets()["Buckets"]]
    assert f"admins-{tag}" in [b["Name"] for b in admin.list_buckets()["Buckets"]]


def test_user_create_without_json_prints_the_keys(cluster: LocalCluster) -> None:
    result = edgestore("user", "create", f"plain{os.getpid()}", "bob", "--cluster", str(cluster.data / "cluster.json"))
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(":", 1) for line in result.stdout.strip().splitlines())
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["account"] == f"plain{os.getpid()}" and fields["user"] == "bob"
    make_s3(cluster.endpoint, fields["access key"], fields["secret key"]).list_buckets()


def test_user_create_with_given_keys(cluster: LocalCluster) -> None:
    access, secret = f"GIVENKEY{os.getpid()}", "given-secret-0123456789"
    created = create_user(cluster, f"given{os.getpid()}", "carol", "--access-key", access, "--secret-key", secret)
    assert (created["access_key"], created["secret_key"]) == (access, secret)
    s3 = make_s3(cluster.url(1), access, secret)
    s3.create_bucket(Bucket=f"carols-{os.getpid()}")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [f"carols-{os.getpid()}"]
    wrong = make_s3(cluster.url(1), access, secret + "x")
    with pytest.raises(ClientError) as exc:
        wrong.list_buckets()
    assert status_of(exc.value) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("account,user", [("bad account", "u"), ("slash/name", "u"), ("ok", "bad:user"),
                                          ("a" * 65, "u")])
def test_user_create_refuses_bad_names(cluster: LocalCluster, account: str, user: str) -> None:
    result = edgestore("user", "create", account, user, "--json", "--cluster", str(cluster.data / "cluster.json"))
    assert_one_line_error(result, "user", "400")
    assert result.stdout == ""


def test_user_create_with_endpoint_and_admin_keys(cluster: LocalCluster) -> None:
    tag = os.getpid()
    access, secret = cluster.credentials
    result = edgestore("user", "create", f"remote{tag}", "dave", "--json", "--endpoint", cluster.url(2) + "/",
                       "--admin-access-key", access, "--admin-secret-key", secret, cwd=cluster.data.parent)
    assert result.returncode == 0, result.stderr
    dave = json.loads(result.stdout)
    assert dave["account"] == f"remote{tag}" and dave["user"] == "dave"
    make_s3(cluster.url(0), dave["access_key"], dave["secret_key"]).create_bucket(Bucket=f"daves-{tag}")

    # A user that is not an admin cannot issue keys, and neither can wrong keys.
    for key, sec in [(dave["access_key"], dave["secret_key"]), (access, secret + "wrong")]:
        refused = edgestore("user", "create", f"remote{tag}", "mallory", "--endpoint", cluster.url(2),
                            "--admin-access-key", key, "--admin-secret-key", sec)
        assert_one_line_error(refused, "user", "403")
        assert refused.stdout == ""
    # --endpoint needs both keys.
    assert_one_line_error(edgestore("user", "create", f"remote{tag}", "x", "--endpoint", cluster.url(2)),
                          "user", "--admin-access-key")


def test_user_create_without_a_cluster_file(tmp_path: Path) -> None:
    result = edgestore("user", "create", "farm", "alice", cwd=tmp_path)
    assert_one_line_error(result, "user", "edgestore up")
    assert result.stdout == ""


def test_user_create_refuses_an_unusable_cluster_file(tmp_path: Path) -> None:
    bad = tmp_path / "cluster.json"
    bad.write_text('{"nodes": []}')
    assert_one_line_error(edgestore("user", "create", "farm", "alice", "--cluster", str(bad)), "user", str(bad))


def test_user_create_with_an_unreachable_endpoint(tmp_path: Path) -> None:
    port = free_port_range(1)
    result = edgestore("user", "create", "farm", "alice", "--endpoint", f"http://127.0.0.1:{port}",
                       "--admin-access-key", "AK", "--admin-secret-key", "SK12345678", cwd=tmp_path)
    assert_one_line_error(result, "user", f"127.0.0.1:{port}")


# -- edgestore up --------------------------------------------------------------------------


def test_up_reuses_its_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = LocalCluster(data)
    try:
        first.start()
        before = first.info
        s3 = make_s3(first.endpoint, *first.credentials)
        s3.create_bucket(Bucket="kept")
        s3.put_object(Bucket="kept", Key="photo.jpg", Body=b"survives a restart" * 1000)
        up_proc = first.up_proc
        assert up_proc is not None
    finally:
        first.stop()
    assert up_proc.returncode == 0, first.log_tail()
    old_pids = [n["pid"] for n in before["nodes"]]
    assert wait_gone(old_pids, 5.0) == []
    assert not any(healthy(n["health_url"]) for n in before["nodes"])

    second = LocalCluster(data)  # a fresh --port, which `up` ignores: the ports are in cluster.json
    try:
        start_on_existing_data(second)
        after = second.info
        assert (after["access_key"], after["secret_key"]) == (before["access_key"], before["secret_key"])
        assert after["s3_endpoint"] == before["s3_endpoint"]
        assert [(n["id"], n["url"], n["data_dir"], n["command"]) for n in after["nodes"]] == \
            [(n["id"], n["url"], n["data_dir"], n["command"]) for n in before["nodes"]]
        new_pids = [n["pid"] for n in after["nodes"]]
        assert set(new_pids).isdisjoint(old_pids) and all(pid_alive(p) for p in new_pids)
        for node in after["nodes"]:
            got = make_s3(node["url"], *second.credentials).get_object(Bucket="kept", Key="photo.jpg")
            assert got["Body"].read() == b"survives a restart" * 1000
    finally:
        second.stop()
    assert wait_gone(new_pids, 5.0) == []


def test_up_refuses_more_replicas_than_nodes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_up_expecting_refusal(data, "--nodes", "4", "--replicas", "5", "--port", str(free_port_range(4)))
    assert_one_line_error(result, "up", "--replicas")
    assert not (data / "cluster.json").exists()


def test_up_refuses_zero_nodes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_up_expecting_refusal(data, "--nodes", "0", "--replicas", "1", "--port", str(free_port_range(4)))
    assert_one_line_error(result, "up", "--nodes")


def test_up_refuses_a_damaged_cluster_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "cluster.json").write_text('{"s3_endpoint": ')
    result = run_up_expecting_refusal(data)
    assert_one_line_error(result, "up", "damaged")


def test_up_refuses_another_node_count_on_existing_data(cluster: LocalCluster) -> None:
    cluster_json = cluster.data / "cluster.json"
    before = cluster_json.read_bytes()
    result = run_up_expecting_refusal(cluster.data, "--nodes", str(cluster.nodes - 1))
    assert_one_line_error(result, "up", f"{cluster.nodes}-node")
    # The running cluster is undisturbed.
    assert cluster_json.read_bytes() == before
    assert all(healthy(n["health_url"]) for n in cluster.info["nodes"])


def test_up_refuses_a_group_commit_window_for_existing_data(cluster: LocalCluster) -> None:
    # The node configs of an existing cluster may have been edited: not rewritten silently.
    before = [Path(n["config"]).read_bytes() for n in cluster.info["nodes"]]
    result = run_up_expecting_refusal(cluster.data, "--group-commit-window-ms", "0")
    assert_one_line_error(result, "up", "group_commit_window_ms")
    assert [Path(n["config"]).read_bytes() for n in cluster.info["nodes"]] == before
    assert all(healthy(n["health_url"]) for n in cluster.info["nodes"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_up_stops_every_node(tmp_path: Path, sig: int) -> None:
    local = LocalCluster(tmp_path / "data")
    try:
        local.start()
        assert local.up_proc is not None
        pids = [n["pid"] for n in local.info["nodes"]]
        assert all(pid_alive(p) for p in pids)
        started = time.monotonic()
        local.up_proc.send_signal(sig)  # SIGINT: Ctrl-C in the terminal, which only `up` receives
        returncode = local.up_proc.wait(timeout=UP_EXIT_TIMEOUT_S)
        assert returncode == 0, local.log_tail()
        assert wait_gone(pids, 5.0) == [], local.log_tail()
        assert time.monotonic() - started < UP_EXIT_TIMEOUT_S
        assert not any(healthy(n["health_url"]) for n in local.info["nodes"])
        assert "stopping nodes" in local.log_tail()
        # Every node stopped cleanly on the SIGTERM `up` sent it, not killed after the grace period.
        for node in local.info["nodes"]:
            log = Path(node["log"]).read_text(errors="replace")
            assert f"node {node['id']} stopping" in log and "Traceback" not in log, node["id"]
    finally:
        local.stop()


def test_up_refuses_a_data_directory_whose_cluster_is_running(tmp_path: Path) -> None:
    local = LocalCluster(tmp_path / "data")
    try:
        local.start()
        cluster_json = local.data / "cluster.json"
        before = cluster_json.read_bytes()
        result = run_up_expecting_refusal(local.data, "--nodes", str(local.nodes))
        assert cluster_json.read_bytes() == before, "cluster.json was rewritten"
        assert_one_line_error(result, "up")
    finally:
        local.stop()


# -- edgestore serve -----------------------------------------------------------------------


@pytest.mark.parametrize("content,needle", [
    (None, "cannot read"),
    ("[node\nid = ", "not valid TOML"),
    ('[node]\nid = "x"\nlisten = "no-port-here"\n', "listen"),
], ids=["missing-file", "invalid-toml", "bad-listen"])
def test_serve_refuses_a_bad_config(tmp_path: Path, content: str | None, needle: str) -> None:
    config = tmp_path / "node.toml"
    if content is not None:
        config.write_text(content)
    result = edgestore("serve", "--config", str(config), timeout=30)
    line = assert_one_line_error(result, "serve", needle)
    if content is None:
        assert str(config) in line


# -- a node brought back by hand ------------------------------------------------------------
# Last in this module: it kills a node of the shared cluster.


def test_a_nodes_command_brings_it_back_after_a_kill(cluster: LocalCluster) -> None:
    index = 2
    node = cluster.node(index)
    s3 = make_s3(cluster.url(0), *cluster.credentials)
    bucket = f"revive-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="before", Body=b"written with every node up")
    old_pid = cluster.pid(index)
    cluster.kill(index)
    assert not pid_alive(old_pid)
    assert not healthy(node["health_url"])
    s3.put_object(Bucket=bucket, Key="during", Body=b"written while the node was down")

    cluster.restart(index)  # runs node["command"] alone, as an operator would
    new_pid = cluster.pid(index)
    assert new_pid != old_pid and pid_alive(new_pid)
    with open(f"/proc/{new_pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:-1] == [a.encode() for a in node["command"]]
    with urllib.request.urlopen(node["health_url"], timeout=5) as response:
        assert response.status == 200
    revived = make_s3(node["url"], *cluster.credentials)
    assert revived.get_object(Bucket=bucket, Key="before")["Body"].read() == b"written with every node up"
    assert revived.get_object(Bucket=bucket, Key="during")["Body"].read() == b"written while the node was down"
    revived.put_object(Bucket=bucket, Key="after", Body=b"through the revived node")
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"through the revived node"


def test_second_serve_on_a_device_in_use_is_refused(cluster: LocalCluster) -> None:
    node = cluster.node(0)
    result = subprocess.run(node["command"], capture_output=True, timeout=60)
    assert result.returncode == 2
    assert b"in use by another edgestore process" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert healthy(node["health_url"])
