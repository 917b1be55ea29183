"""CORS through the Swift API on a real cluster, configured by container metadata as in
Swift (X-Container-Meta-Access-Control-Allow-Origin, -Max-Age, -Expose-Headers): a browser's
preflight, then its actual request."""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests

swiftclient = pytest.importorskip("swiftclient")

TIMEOUT_S = 30
SITE = "https://dashboard.farm.example"


def preflight(url: str, origin: str | None, method: str | None, headers: str | None = None) -> requests.Response:
    sent = {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
    return requests.options(url, headers={k: v for k, v in sent.items() if v is not None}, timeout=TIMEOUT_S)


def test_a_container_that_allows_an_origin_answers_its_preflight_and_requests(swift_conn: Any) -> None:
    container = f"cors{os.getpid()}"
    swift_conn.put_container(container, headers={
        "X-Container-Meta-Access-Control-Allow-Origin": f"{SITE} https://other.example",
        "X-Container-Meta-Access-Control-Max-Age": "600",
        "X-Container-Meta-Access-Control-Expose-Headers": "X-Custom"})
    swift_conn.put_object(container, "chart.json", b"{}", headers={"X-Object-Meta-Source": "sensor-7"})
    url, token = swift_conn.get_auth()
    obj = f"{url}/{container}/chart.json"
    ok = preflight(obj, SITE, "PUT", "x-auth-token, content-type")
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == SITE
    assert "PUT" in ok.headers["Access-Control-Allow-Methods"].split(", ")
    assert ok.headers["Access-Control-Allow-Headers"] == "x-auth-token, content-type"
    assert ok.headers["Access-Control-Max-Age"] == "600"
    assert preflight(obj, "https://evil.example", "GET").status_code == 401
    assert preflight(url, SITE, "GET").status_code == 401  # the account has no CORS metadata
    plain = requests.options(obj, timeout=TIMEOUT_S)
    assert plain.status_code == 200 and "GET" in plain.headers["Allow"]

    got = requests.get(obj, headers={"X-Auth-Token": token, "Origin": SITE}, timeout=TIMEOUT_S)
    assert got.status_code == 200 and got.headers["Access-Control-Allow-Origin"] == SITE
    exposed = got.headers["Access-Control-Expose-Headers"].split(", ")
    assert {"etag", "x-object-meta-source", "x-custom"} <= set(exposed)
    stranger = requests.get(obj, headers={"X-Auth-Token": token, "Origin": "https://evil.example"},
                            timeout=TIMEOUT_S)
    assert stranger.status_code == 200 and "Access-Control-Allow-Origin" not in stranger.headers
    denied = requests.get(obj, headers={"Origin": SITE}, timeout=TIMEOUT_S)  # no token: 401, still CORS
    assert denied.status_code == 401 and denied.headers["Access-Control-Allow-Origin"] == SITE


def test_a_wildcard_allows_every_origin(swift_conn: Any) -> None:
    container = f"corsall{os.getpid()}"
    swift_conn.put_container(container, headers={"X-Container-Meta-Access-Control-Allow-Origin": "*"})
    url, _ = swift_conn.get_auth()
    ok = preflight(f"{url}/{container}/anything", "https://any.example", "GET")
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == "*"
