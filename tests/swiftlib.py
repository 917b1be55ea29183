"""Helpers for the Swift API tests: a raw requester for one storage URL, logging in with
TempAuth's v1 protocol, and users made through `edgestore user create`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
from clusterlib import LocalCluster

TIMEOUT_S = 30


class Swift:
    """A raw requester for one account's storage URL."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def __call__(self, method: str, path: str = "", headers: dict[str, str] | None = None,
                 **kwargs: Any) -> requests.Response:
        return requests.request(method, self.url + path, headers={"X-Auth-Token": self.token, **(headers or {})},
                                timeout=TIMEOUT_S, **kwargs)


def swift_login(cluster: LocalCluster, user: str, key: str) -> Swift:
    r = requests.get(cluster.endpoint + "/auth/v1.0", headers={"X-Auth-User": user, "X-Auth-Key": key},
                     timeout=TIMEOUT_S)
    assert r.status_code == 200, r.text
    return Swift(r.headers["X-Storage-Url"], r.headers["X-Auth-Token"])


def create_user(cluster: LocalCluster, account: str, user: str, *extra: str) -> dict[str, Any]:
    script = shutil.which("edgestore", path=str(Path(sys.executable).parent))
    argv = [script] if script else [sys.executable, "-m", "edgestore"]
    result = subprocess.run([*argv, "user", "create", account, user, "--json", "--cluster",
                             str(cluster.data / "cluster.json"), *extra], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    created: dict[str, Any] = json.loads(result.stdout)
    return created
