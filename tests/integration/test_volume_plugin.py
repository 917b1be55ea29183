"""`edgestore volume-plugin` driven over its unix socket with the requests dockerd sends
(POST /Plugin.Activate, /VolumeDriver.*, JSON bodies), against a real cluster: volumes are
buckets, the first Mount runs a real FUSE mount that later Mounts share, the last Unmount
takes it down, and the definitions outlive the plugin."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_s3, unique_bucket_name
from mounts import fuse_unusable, mounted, unmount

pytestmark = pytest.mark.timeout(300)
START_TIMEOUT_S = 30.0
MIME = "application/vnd.docker.plugins.v1.2+json"


@pytest.fixture(scope="module", autouse=True)
def needs_fuse() -> None:
    reason = fuse_unusable()
    if reason:
        pytest.skip(f"volumes are FUSE mounts: {reason}")


class UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket, as dockerd talks to a plugin."""

    def __init__(self, path: Path) -> None:
        super().__init__("plugin", timeout=120)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.socket_path))


class Plugin:
    """One `edgestore volume-plugin` process and the directories it keeps its state in."""

    def __init__(self, cluster: Any, home: Path) -> None:
        self.cluster = cluster
        self.home = home
        self.socket = home / "plugin.sock"
        self.state = home / "state"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "edgestore", "volume-plugin", "--socket", str(self.socket),
                   "--state-dir", str(self.state), "--cache-dir", str(self.home / "cache"),
                   "--cluster", str(self.cluster.data / "cluster.json")]
        with open(self.home / "plugin.log", "ab") as log:
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if self.call("Plugin.Activate")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the plugin did not start: {self.log()}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def log(self) -> str:
        return (self.home / "plugin.log").read_text(errors="replace")[-3000:]

    def call(self, method: str, body: Any = None, raw: bytes | None = None,
             verb: str = "POST") -> tuple[int, dict[str, Any], str]:
        """(status, decoded JSON answer, content type) of one request."""
        conn = UnixConnection(self.socket)
        try:
            data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
            conn.request(verb, f"/{method}", body=data, headers={"Accept": MIME, "Content-Type": MIME})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read()), resp.getheader("Content-Type", "")
        finally:
            conn.close()

    def ok(self, method: str, body: Any = None) -> dict[str, Any]:
        status, answer, _ = self.call(method, body)
        assert status == 200 and not answer.get("Err"), (method, status, answer, self.log())
        return answer

    def refused(self, method: str, body: Any = None, raw: bytes | None = None, verb: str = "POST") -> tuple[int, str]:
        status, answer, _ = self.call(method, body, raw, verb)
        assert status >= 400 and answer.get("Err"), (method, status, answer)
        return status, str(answer["Err"])


@pytest.fixture(scope="module")
def boto(cluster: Any) -> Any:
    return make_s3(cluster.endpoint, *cluster.credentials)


@pytest.fixture
def plugin(cluster: Any, tmp_path: Path) -> Iterator[Plugin]:
    """A running plugin; afterwards stopped, and every mount it made taken down, whatever happened."""
    running = Plugin(cluster, tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        for data in running.state.glob("*/_data"):
            unmount(data)
        assert not any(mounted(d) for d in running.state.glob("*/_data"))


def fstype(path: Path) -> list[str]:
    """The filesystem types of every mount on ``path`` (one entry per mount)."""
    with open("/proc/mounts") as mounts:
        return [f[2] for line in mounts if len(f := line.split()) > 2 and f[1] == str(path)]


def test_activate_and_capabilities_answer_as_a_volume_driver(plugin: Plugin) -> None:
    status, answer, content_type = plugin.call("Plugin.Activate")
    assert (status, answer) == (200, {"Implements": ["VolumeDriver"]})
    assert content_type.startswith(MIME)
    assert plugin.ok("VolumeDriver.Capabilities") == {"Capabilities": {"Scope": "local"}}
    assert plugin.ok("VolumeDriver.List") == {"Volumes": [], "Err": ""}


def test_create_makes_the_bucket_and_list_get_path_describe_it(plugin: Plugin, boto: Any,
                                                               request: pytest.FixtureRequest) -> None:
    bucket = unique_bucket_name("v", request)
    plugin.ok("VolumeDriver.Create", {"Name": "photos", "Opts": {"bucket": bucket, "ttl": "2"}})
    boto.head_bucket(Bucket=bucket)  # made by the create
    plugin.ok("VolumeDriver.Create", {"Name": "Scratch_Dir.1", "Opts": None})
    boto.head_bucket(Bucket="scratch-dir-1")  # the name, made a bucket name
    plugin.ok("VolumeDriver.Create", {"Name": "photos", "Opts": {}})  # again, as dockerd may: no change
    listed = plugin.ok("VolumeDriver.List")["Volumes"]
    assert sorted(listed, key=lambda v: v["Name"]) == [{"Name": "Scratch_Dir.1", "Mountpoint": ""},
                                                         {"Name": "photos", "Mountpoint": ""}]
    volume = plugin.ok("VolumeDriver.Get", {"Name": "photos"})["Volume"]
    assert volume["Name"] == "photos" and volume["Mountpoint"] == "" and volume["CreatedAt"]
    assert volume["Status"] == {"bucket": bucket, "mounts": 0, "ttl": "2"}
    assert plugin.ok("VolumeDriver.Path", {"Name": "photos"}) == {"Mountpoint": "", "Err": ""}
    state = plugin.state / ".volumes.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600  # it may hold keys
    plugin.ok("VolumeDriver.Remove", {"Name": "Scratch_Dir.1"})
    assert [v["Name"] for v in plugin.ok("VolumeDriver.List")["Volumes"]] == ["photos"]
    boto.head_bucket(Bucket="scratch-dir-1")  # removing a volume never deletes data


def test_two_mounts_share_one_fuse_mount_until_the_last_unmount(plugin: Plugin, boto: Any,
                                                                request: pytest.FixtureRequest) -> None:
    bucket = unique_bucket_name("v", request)
    plugin.ok("VolumeDriver.Create", {"Name": "shared", "Opts": {"bucket": bucket}})
    first = plugin.ok("VolumeDriver.Mount", {"Name": "shared", "ID": "container-a"})["Mountpoint"]
    mountpoint = plugin.state / "shared" / "_data"
    assert first == str(mountpoint)
    assert fstype(mountpoint) == ["fuse.edgestore"]
    second = plugin.ok("VolumeDriver.Mount", {"Name": "shared", "ID": "container-b"})["Mountpoint"]
    assert second == first and fstype(mountpoint) == ["fuse.edgestore"]  # the same mount, not a second one
    assert plugin.ok("VolumeDriver.Get", {"Name": "shared"})["Volume"]["Status"]["mounts"] == 2

    (mountpoint / "albums").mkdir()
    (mountpoint / "albums" / "cat.jpg").write_bytes(b"\xff\xd8 a cat")
    assert boto.get_object(Bucket=bucket, Key="albums/cat.jpg")["Body"].read() == b"\xff\xd8 a cat"
    assert plugin.refused("VolumeDriver.Remove", {"Name": "shared"})[0] == 409  # in use

    plugin.ok("VolumeDriver.Unmount", {"Name": "shared", "ID": "container-a"})
    assert mounted(mountpoint)  # container-b still has it
    assert (mountpoint / "albums" / "cat.jpg").read_bytes() == b"\xff\xd8 a cat"
    assert plugin.ok("VolumeDriver.Path", {"Name": "shared"})["Mountpoint"] == first
    status, err = plugin.refused("VolumeDriver.Unmount", {"Name": "shared", "ID": "container-a"})
    assert status == 409 and "not mounted" in err

    plugin.ok("VolumeDriver.Unmount", {"Name": "shared", "ID": "container-b"})
    assert not mounted(mountpoint)
    assert plugin.ok("VolumeDriver.Path", {"Name": "shared"})["Mountpoint"] == ""
    plugin.ok("VolumeDriver.Remove", {"Name": "shared"})
    assert plugin.ok("VolumeDriver.List")["Volumes"] == []
    assert not (plugin.state / "shared").exists()
    assert boto.get_object(Bucket=bucket, Key="albums/cat.jpg")["Body"].read() == b"\xff\xd8 a cat"


def test_unknown_volumes_and_bad_requests_get_err_answers(plugin: Plugin, request: pytest.FixtureRequest) -> None:
    for method in ("Get", "Path", "Remove"):
        status, err = plugin.refused(f"VolumeDriver.{method}", {"Name": "nothing-here"})
        assert status == 404 and "no such volume" in err, method
    for method in ("Mount", "Unmount"):
        status, err = plugin.refused(f"VolumeDriver.{method}", {"Name": "nothing-here", "ID": "x"})
        assert status == 404 and "no such volume" in err, method
    assert plugin.refused("VolumeDriver.Create", raw=b"{not json")[0] == 400
    assert plugin.refused("VolumeDriver.Create", raw=b"[1, 2]")[0] == 400
    assert plugin.refused("VolumeDriver.Create", {"Opts": {}})[0] == 400  # no Name
    assert plugin.refused("VolumeDriver.Get", {"Name": 7})[0] == 400
    for name in ("../escape", "/abs", "x", ".hidden", "a/b"):
        assert plugin.refused("VolumeDriver.Create", {"Name": name})[0] == 400, name
    status, err = plugin.refused("VolumeDriver.Create", {"Name": "opts", "Opts": {"colour": "blue"}})
    assert status == 400 and "colour" in err
    assert plugin.refused("VolumeDriver.Create", {"Name": "opts", "Opts": {"ttl": 3}})[0] == 400
    status, err = plugin.refused("VolumeDriver.Create", {"Name": "badbucket", "Opts": {"bucket": "Not_A_Bucket"}})
    assert status == 400 and "not a valid bucket name" in err
    status, err = plugin.refused("VolumeDriver.Create",
                                 {"Name": "nowhere", "Opts": {"endpoint": "http://127.0.0.1:9", "bucket": "abc"}})
    assert status == 502 and "127.0.0.1:9" in err
    assert plugin.refused("VolumeDriver.Mount", {"Name": "nothing-here", "ID": 5})[0] == 400
    assert plugin.refused("VolumeDriver.Explode", {})[0] == 404
    assert plugin.refused("VolumeDriver.List", verb="GET")[0] == 405

    bucket = unique_bucket_name("v", request)
    plugin.ok("VolumeDriver.Create", {"Name": "taken", "Opts": {"bucket": bucket}})
    status, err = plugin.refused("VolumeDriver.Create", {"Name": "taken", "Opts": {"bucket": bucket + "x"}})
    assert status == 409 and "already exists" in err
    assert [v["Name"] for v in plugin.ok("VolumeDriver.List")["Volumes"]] == ["taken"]  # nothing half-made


def test_volumes_and_held_mounts_survive_a_plugin_crash_and_restart(plugin: Plugin, boto: Any,
                                                          request: pytest.FixtureRequest) -> None:
    buckets = [unique_bucket_name(f"v{i}", request) for i in range(3)]
    for name, bucket in zip(("idle", "held", "lost"), buckets, strict=True):
        plugin.ok("VolumeDriver.Create", {"Name": name, "Opts": {"bucket": bucket}})
    held = Path(plugin.ok("VolumeDriver.Mount", {"Name": "held", "ID": "c1"})["Mountpoint"])
    lost = Path(plugin.ok("VolumeDriver.Mount", {"Name": "lost", "ID": "c2"})["Mountpoint"])
    plugin.stop(signal.SIGKILL)  # a crash: the socket file is left behind, the state file was written
    assert plugin.socket.exists()
    assert mounted(held) and mounted(lost)  # running containers keep their files
    unmount(lost)  # ... but this one goes away while the plugin is down
    plugin.start()

    volumes = {v["Name"]: v["Mountpoint"] for v in plugin.ok("VolumeDriver.List")["Volumes"]}
    assert volumes == {"idle": "", "held": str(held), "lost": ""}
    assert not mounted(plugin.state / "idle" / "_data")  # nothing mounted until asked
    assert plugin.ok("VolumeDriver.Get", {"Name": "idle"})["Volume"]["Status"]["bucket"] == buckets[0]
    (held / "after-restart").write_bytes(b"still here")
    assert boto.get_object(Bucket=buckets[1], Key="after-restart")["Body"].read() == b"still here"
    plugin.ok("VolumeDriver.Unmount", {"Name": "held", "ID": "c1"})  # the ID from before the restart
    assert not mounted(held)
    assert plugin.refused("VolumeDriver.Unmount", {"Name": "lost", "ID": "c2"})[0] == 409  # no longer held
    again = Path(plugin.ok("VolumeDriver.Mount", {"Name": "lost", "ID": "c3"})["Mountpoint"])
    assert again == lost and mounted(lost)
    plugin.ok("VolumeDriver.Unmount", {"Name": "lost", "ID": "c3"})
    assert not mounted(lost)


def test_a_second_plugin_on_the_same_socket_is_refused(plugin: Plugin) -> None:
    other = subprocess.run([sys.executable, "-m", "edgestore", "volume-plugin", "--socket", str(plugin.socket),
                            "--state-dir", str(plugin.home / "other")], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    assert other.returncode == 2 and "another plugin" in other.stderr
    assert plugin.ok("Plugin.Activate") == {"Implements": ["VolumeDriver"]}
    assert os.path.exists(plugin.socket)
