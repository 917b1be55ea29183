"""Account quotas (X-Account-Meta-Quota-Bytes, Swift's account_quotas) on a real cluster:
only an admin sets or lifts one, and uploads past it are 413 while the account's users
cannot lift it themselves."""

from __future__ import annotations

import os

import requests
from clusterlib import LocalCluster
from swiftlib import TIMEOUT_S, Swift, create_user, swift_login

ACCOUNT = f"quota{os.getpid()}"


def test_an_admin_caps_an_account_and_its_users_cannot_lift_the_cap(cluster: LocalCluster) -> None:
    create_user(cluster, ACCOUNT, "carol", "--swift-key", "carol-key")
    carol = swift_login(cluster, f"{ACCOUNT}:carol", "carol-key")
    admin_default = swift_login(cluster, "default:admin", cluster.credentials[1])
    admin = Swift(carol.url, admin_default.token)  # an admin reaches every account
    assert carol("PUT", "/box").status_code == 201
    assert carol("PUT", "/box/first", data=b"x" * 600).status_code == 201

    assert carol("POST", headers={"X-Account-Meta-Quota-Bytes": "1000"}).status_code == 403
    assert admin("POST", headers={"X-Account-Meta-Quota-Bytes": "ten"}).status_code == 400
    assert admin("POST", headers={"X-Account-Meta-Quota-Bytes": "1000"}).status_code == 204
    assert carol("HEAD").headers["X-Account-Meta-Quota-Bytes"] == "1000"

    over = carol("PUT", "/box/second", data=b"y" * 500)
    assert over.status_code == 413 and "quota" in over.text.lower()
    assert carol("PUT", "/box/small", data=b"z" * 300).status_code == 201
    assert carol("POST", headers={"X-Remove-Account-Meta-Quota-Bytes": "x"}).status_code == 403
    assert carol("PUT", "/box/second", data=b"y" * 500).status_code == 413

    assert admin("POST", headers={"X-Remove-Account-Meta-Quota-Bytes": "x"}).status_code == 204
    assert carol("PUT", "/box/second", data=b"y" * 500).status_code == 201
    info = requests.get(cluster.endpoint + "/info", timeout=TIMEOUT_S).json()
    assert "account_quotas" in info
