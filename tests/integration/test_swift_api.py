"""The Swift API at the HTTP level, on a real cluster: TempAuth-style login and tokens,
routing beside S3 (buckets may be named auth, info, v1), listings in every format,
names and bodies Swift refuses, ranges and conditionals, COPY, and /info."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from clusterlib import LocalCluster
from swiftlib import Swift, create_user

from edgestore.api.swift.auth import make_token
from edgestore.model.users import User

TIMEOUT_S = 30
TAG = os.getpid()


@pytest.fixture(scope="module")
def login(cluster: LocalCluster) -> tuple[str, str]:
    """(storage URL, token) of the default admin."""
    r = requests.get(cluster.endpoint + "/auth/v1.0", timeout=TIMEOUT_S,
                     headers={"X-Auth-User": "default:admin", "X-Auth-Key": cluster.credentials[1]})
    assert r.status_code == 200, r.text
    return r.headers["X-Storage-Url"], r.headers["X-Auth-Token"]


@pytest.fixture(scope="module")
def sw(login: tuple[str, str]) -> Swift:
    return Swift(*login)


@pytest.fixture
def container(sw: Swift, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"c{TAG}-{request.node.name[:40]}"
    assert sw("PUT", "/" + name).status_code == 201
    yield name


# -- auth ------------------------------------------------------------------------------------


def test_login_returns_token_and_storage_url_for_the_host_asked(cluster: LocalCluster) -> None:
    for node in range(cluster.nodes):
        base = cluster.url(node)
        r = requests.get(base + "/auth/v1.0", timeout=TIMEOUT_S,
                         headers={"X-Storage-User": "default:admin", "X-Storage-Pass": cluster.credentials[1]})
        assert r.status_code == 200, r.text
        assert r.headers["X-Storage-Url"] == base.rstrip("/") + "/v1/AUTH_default"
        assert r.headers["X-Auth-Token"] == r.headers["X-Storage-Token"]
        assert 0 < int(r.headers["X-Auth-Token-Expires"]) <= 24 * 3600
        # Any node accepts a token any node issued.
        other = cluster.url((node + 1) % cluster.nodes)
        head = requests.head(other + "/v1/AUTH_default", headers={"X-Auth-Token": r.headers["X-Auth-Token"]},
                             timeout=TIMEOUT_S)
        assert head.status_code == 204


@pytest.mark.parametrize("user,key", [("default:admin", "wrong-key"), ("default:nobody", "x"),
                                      ("noaccount", "x"), ("default:admin", "")])
def test_login_with_bad_credentials_is_401(cluster: LocalCluster, user: str, key: str) -> None:
    r = requests.get(cluster.endpoint + "/auth/v1.0", headers={"X-Auth-User": user, "X-Auth-Key": key},
                     timeout=TIMEOUT_S)
    assert r.status_code == 401
    assert "X-Auth-Token" not in r.headers


def test_bad_missing_forged_and_expired_tokens_are_401(cluster: LocalCluster, login: tuple[str, str]) -> None:
    url, token = login
    secret = (cluster.data / "secret").read_text().strip().encode()
    access, key = cluster.credentials
    admin = User("default", "admin", access, key, True)
    bad = {
        "garbage": "nonsense", "tampered": token[:-1] + ("0" if token[-1] != "0" else "1"),
        "expired": make_token(secret, admin, int(time.time()) - 1),
        "other secret": make_token(b"not the cluster secret", admin, int(time.time()) + 3600),
    }
    for what, value in bad.items():
        r = requests.get(url, headers={"X-Auth-Token": value}, timeout=TIMEOUT_S)
        assert r.status_code == 401, what
        assert "Traceback" not in r.text
    assert requests.get(url, timeout=TIMEOUT_S).status_code == 401  # no token, no S3 auth: Swift's 401
    good = make_token(secret, admin, int(time.time()) + 60)
    assert requests.head(url, headers={"X-Auth-Token": good}, timeout=TIMEOUT_S).status_code == 204


def test_a_token_is_refused_once_its_users_swift_key_changes(cluster: LocalCluster) -> None:
    # The node remembers tokens it has checked; a new key must still revoke them. The user
    # is re-created through the node that serves the token (cluster.endpoint), which
    # refreshes its user record at once (other nodes within their users cache's lifetime).
    account, access = f"rek{TAG}", f"REKEY{TAG}"
    create_user(cluster, account, "rex", "--access-key", access, "--secret-key", "rex-secret-0123",
                "--swift-key", "first-key")
    r = requests.get(cluster.endpoint + "/auth/v1.0", timeout=TIMEOUT_S,
                     headers={"X-Auth-User": f"{account}:rex", "X-Auth-Key": "first-key"})
    assert r.status_code == 200
    url, token = r.headers["X-Storage-Url"], r.headers["X-Auth-Token"]
    for _ in range(2):  # checked, then answered from what the node remembers
        assert requests.head(url, headers={"X-Auth-Token": token}, timeout=TIMEOUT_S).status_code == 204
    create_user(cluster, account, "rex", "--access-key", access, "--secret-key", "rex-secret-0123",
                "--swift-key", "second-key")
    assert requests.head(url, headers={"X-Auth-Token": token}, timeout=TIMEOUT_S).status_code == 401


def test_token_of_one_account_is_403_on_another_unless_admin(cluster: LocalCluster, sw: Swift) -> None:
    created = create_user(cluster, f"swa{TAG}", "ann", "--swift-key", "ann-swift-key")
    assert created["swift_key"] == "ann-swift-key" and created["swift_user"] == f"swa{TAG}:ann"
    r = requests.get(cluster.endpoint + "/auth/v1.0", timeout=TIMEOUT_S,
                     headers={"X-Auth-User": f"swa{TAG}:ann", "X-Auth-Key": "ann-swift-key"})
    assert r.status_code == 200
    ann = Swift(r.headers["X-Storage-Url"], r.headers["X-Auth-Token"])
    assert ann.url.endswith(f"/v1/AUTH_swa{TAG}")
    assert ann("PUT", f"/anns{TAG}").status_code == 201
    # The S3 secret is not Ann's Swift key when she has her own.
    r = requests.get(cluster.endpoint + "/auth/v1.0", timeout=TIMEOUT_S,
                     headers={"X-Auth-User": f"swa{TAG}:ann", "X-Auth-Key": created["secret_key"]})
    assert r.status_code == 401
    default_url = sw.url
    for method in ("GET", "HEAD"):
        assert requests.request(method, default_url, headers={"X-Auth-Token": ann.token},
                                timeout=TIMEOUT_S).status_code == 403
    assert requests.put(default_url + f"/ann-planted{TAG}", headers={"X-Auth-Token": ann.token},
                        timeout=TIMEOUT_S).status_code == 403
    # The admin sees Ann's account.
    admin_view = requests.get(ann.url, headers={"X-Auth-Token": sw.token}, params={"format": "json"},
                              timeout=TIMEOUT_S)
    assert admin_view.status_code == 200
    assert [c["name"] for c in admin_view.json()] == [f"anns{TAG}"]
    # Container names are cluster-wide: Ann cannot take one the default account holds.
    assert sw("PUT", f"/taken{TAG}").status_code == 201
    assert ann("PUT", f"/taken{TAG}").status_code == 409
    assert ann("GET", f"/taken{TAG}").status_code == 404


def test_info_lists_capabilities(cluster: LocalCluster) -> None:
    r = requests.get(cluster.endpoint + "/info", timeout=TIMEOUT_S)
    assert r.status_code == 200
    info = r.json()["swift"]
    assert info["container_listing_limit"] == 10000
    assert info["max_object_name_length"] == 1024 and info["max_container_name_length"] == 256
    assert info["max_file_size"] >= 5 * 1024 ** 3


def test_s3_keeps_buckets_named_like_swift_paths(s3: Any) -> None:
    for name in ("info", "auth", "v1.0"):
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="v1.0", Body=b"s3 data")
        assert s3.get_object(Bucket=name, Key="v1.0")["Body"].read() == b"s3 data"
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]] == ["v1.0"]
    s3.create_bucket(Bucket="v1-x")
    s3.put_object(Bucket="info", Key="a\nb", Body=b"newline")
    assert s3.get_object(Bucket="info", Key="a\nb")["Body"].read() == b"newline"


# -- containers ------------------------------------------------------------------------------


def test_container_lifecycle(sw: Swift) -> None:
    name = f"life{TAG}"
    assert sw("DELETE", "/" + name).status_code == 404
    assert sw("PUT", "/" + name).status_code == 201
    assert sw("PUT", "/" + name).status_code == 202
    sw("PUT", f"/{name}/obj", data=b"12345")
    head = sw("HEAD", "/" + name)
    assert head.status_code == 204
    assert head.headers["X-Container-Object-Count"] == "1" and head.headers["X-Container-Bytes-Used"] == "5"
    assert sw("DELETE", "/" + name).status_code == 409
    assert sw("DELETE", f"/{name}/obj").status_code == 204
    assert sw("DELETE", f"/{name}/obj").status_code == 404
    assert sw("DELETE", "/" + name).status_code == 204
    assert sw("HEAD", "/" + name).status_code == 404


def test_bad_names(sw: Swift, container: str) -> None:
    assert sw("PUT", "/" + "c" * 257).status_code == 400
    assert sw("PUT", "/" + "c" * 256).status_code == 201
    assert sw("PUT", f"/{container}/" + "o" * 1025, data=b"x").status_code == 400
    assert sw("PUT", f"/{container}/" + "o" * 1024, data=b"x").status_code == 201
    bad_utf8 = requests.put(sw.url + "/%ff%fe", headers={"X-Auth-Token": sw.token}, timeout=TIMEOUT_S)
    assert bad_utf8.status_code == 412
    nul = requests.put(sw.url + f"/{container}/a%00b", headers={"X-Auth-Token": sw.token}, data=b"x",
                       timeout=TIMEOUT_S)
    assert nul.status_code == 412
    assert sw("PATCH", "").status_code == 405


# -- objects ---------------------------------------------------------------------------------


def test_put_with_wrong_etag_is_422_and_stores_nothing(sw: Swift, container: str) -> None:
    r = sw("PUT", f"/{container}/o", data=b"body", headers={"ETag": hashlib.md5(b"other").hexdigest()})
    assert r.status_code == 422
    assert sw("HEAD", f"/{container}/o").status_code == 404
    big = os.urandom(3 * 1024 * 1024 + 5)  # blocks, not inline
    r = sw("PUT", f"/{container}/big", data=big, headers={"ETag": "0" * 32})
    assert r.status_code == 422
    assert sw("HEAD", f"/{container}/big").status_code == 404
    r = sw("PUT", f"/{container}/o", data=b"body", headers={"ETag": hashlib.md5(b"body").hexdigest()})
    assert r.status_code == 201 and r.headers["Etag"] == hashlib.md5(b"body").hexdigest()


def test_chunked_upload_meta_and_content_type(sw: Swift, container: str) -> None:
    pieces = [os.urandom(100_000) for _ in range(30)]
    r = sw("PUT", f"/{container}/photo.jpg", data=iter(pieces), headers={"X-Object-Meta-Camera": "Pi Cam"})
    assert r.status_code == 201
    body = b"".join(pieces)
    got = sw("GET", f"/{container}/photo.jpg")
    assert got.content == body
    assert got.headers["Etag"] == hashlib.md5(body).hexdigest()
    assert got.headers["Content-Type"] == "image/jpeg"
    assert got.headers["X-Object-Meta-Camera"] == "Pi Cam"
    assert "X-Timestamp" in got.headers and "Last-Modified" in got.headers
    r = sw("PUT", f"/{container}/data.bin", data=b"x", headers={"Content-Type": "text/x-given"})
    assert sw("HEAD", f"/{container}/data.bin").headers["Content-Type"].startswith("text/x-given")


def test_ranges_and_conditionals(sw: Swift, container: str) -> None:
    body = bytes(range(256)) * 10
    etag = sw("PUT", f"/{container}/r", data=body).headers["Etag"]
    r = sw("GET", f"/{container}/r", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == body[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(body)}"
    assert sw("GET", f"/{container}/r", headers={"Range": "bytes=-5"}).content == body[-5:]
    r = sw("GET", f"/{container}/r", headers={"Range": f"bytes={len(body)}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(body)}"
    assert sw("GET", f"/{container}/r", headers={"If-None-Match": etag}).status_code == 304
    assert sw("GET", f"/{container}/r", headers={"If-Match": '"' + etag + '"'}).status_code == 200
    assert sw("GET", f"/{container}/r", headers={"If-Match": "nope"}).status_code == 412
    assert sw("PUT", f"/{container}/r", data=b"x", headers={"If-None-Match": "*"}).status_code == 412
    assert sw("GET", f"/{container}/r").content == body


def test_post_replaces_metadata_and_copy_keeps_it(sw: Swift, container: str) -> None:
    sw("PUT", f"/{container}/src", data=b"source", headers={"X-Object-Meta-A": "1", "X-Object-Meta-B": "2",
                                                             "Content-Type": "text/plain"})
    assert sw("POST", f"/{container}/src", headers={"X-Object-Meta-C": "3"}).status_code == 202
    head = sw("HEAD", f"/{container}/src").headers
    assert head.get("X-Object-Meta-C") == "3" and "X-Object-Meta-A" not in head
    assert head["Content-Type"].startswith("text/plain")
    r = sw("COPY", f"/{container}/src", headers={"Destination": f"{container}/dst", "X-Object-Meta-D": "4"})
    assert r.status_code == 201
    assert r.headers["X-Copied-From"] == f"{container}/src"
    got = sw("GET", f"/{container}/dst")
    assert got.content == b"source"
    assert got.headers["X-Object-Meta-C"] == "3" and got.headers["X-Object-Meta-D"] == "4"
    r = sw("PUT", f"/{container}/dst2", headers={"X-Copy-From": f"/{container}/src"}, data=b"")
    assert r.status_code == 201
    assert sw("GET", f"/{container}/dst2").content == b"source"
    assert sw("COPY", f"/{container}/missing", headers={"Destination": f"{container}/x"}).status_code == 404
    assert sw("POST", f"/{container}/missing").status_code == 404


# -- listings --------------------------------------------------------------------------------


def test_listing_formats_and_parameters(sw: Swift, container: str) -> None:
    names = ["a", "b/1", "b/2", "b/c/3", "c", "d.txt"]
    for name in names:
        assert sw("PUT", f"/{container}/{name}", data=name.encode()).status_code == 201
    plain = sw("GET", "/" + container)
    assert plain.status_code == 200 and plain.text.splitlines() == names
    assert plain.headers["Content-Type"].startswith("text/plain")
    as_json = sw("GET", "/" + container, params={"format": "json"}).json()
    assert [e["name"] for e in as_json] == names
    entry = as_json[0]
    assert entry["bytes"] == 1 and entry["hash"] == hashlib.md5(b"a").hexdigest()
    assert len(entry["last_modified"]) == 26 and entry["last_modified"][10] == "T"
    accept = sw("GET", "/" + container, headers={"Accept": "application/json"})
    assert accept.headers["Content-Type"].startswith("application/json")
    root = ET.fromstring(sw("GET", "/" + container, params={"format": "xml", "delimiter": "/"}).content)
    assert root.tag == "container" and root.get("name") == container
    assert [e.findtext("name") for e in root] == ["a", "b/", "c", "d.txt"]
    assert [e.tag for e in root] == ["object", "subdir", "object", "object"]

    def listing(**params: Any) -> list[str]:
        r = sw("GET", "/" + container, params={"format": "json", **params})
        assert r.status_code == 200, r.text
        return [e.get("name", e.get("subdir")) for e in r.json()]

    assert listing(delimiter="/") == ["a", "b/", "c", "d.txt"]
    assert listing(prefix="b/", delimiter="/") == ["b/1", "b/2", "b/c/"]
    assert listing(path="b") == ["b/1", "b/2"]
    assert listing(marker="b/1") == ["b/2", "b/c/3", "c", "d.txt"]
    assert listing(marker="a", end_marker="c") == ["b/1", "b/2", "b/c/3"]
    assert listing(limit="2") == ["a", "b/1"]
    assert listing(reverse="true") == names[::-1]
    assert listing(reverse="true", limit="2") == ["d.txt", "c"]
    assert listing(reverse="true", marker="c") == ["b/c/3", "b/2", "b/1", "a"]
    assert listing(delimiter="/", marker="b/") == ["c", "d.txt"]
    assert listing(prefix="zzz") == []
    assert sw("GET", "/" + container, params={"prefix": "zzz"}).status_code == 204
    assert sw("GET", "/" + container, params={"limit": "10001"}).status_code == 412
    assert sw("GET", "/" + container, params={"limit": "x"}).status_code == 412


def test_plain_listings_name_what_json_listings_name(sw: Swift, container: str) -> None:
    """Plain text listings read names only from the replicas: the same entries as the JSON
    listing, deleted and overwritten objects included, under every parameter."""
    names = ["a", "b/1", "b/2", "b/c/3", "c", "d.txt", "d/x", "e"]
    for name in names + ["gone", "b/gone", "d/gone/y"]:
        assert sw("PUT", f"/{container}/{name}", data=b"x").status_code == 201
    for name in ("gone", "b/gone", "d/gone/y"):
        assert sw("DELETE", f"/{container}/{name}").status_code == 204
    assert sw("PUT", f"/{container}/c", data=b"again").status_code == 201

    def both(**params: str) -> tuple[list[str], list[str]]:
        plain = sw("GET", "/" + container, params=params)
        assert plain.status_code in (200, 204), plain.text
        assert plain.status_code == 204 or plain.headers["Content-Type"].startswith("text/plain")
        as_json = sw("GET", "/" + container, params={"format": "json", **params})
        assert as_json.status_code == 200, as_json.text
        return plain.text.splitlines(), [e.get("name", e.get("subdir")) for e in as_json.json()]

    assert both() == (names, names)
    for params in ({"delimiter": "/"}, {"prefix": "b/", "delimiter": "/"}, {"prefix": "d/", "delimiter": "/"},
                   {"path": "b"}, {"path": "d"}, {"marker": "b/1"}, {"marker": "a", "end_marker": "d"},
                   {"limit": "3"}, {"limit": "2", "delimiter": "/"}, {"reverse": "true"},
                   {"reverse": "true", "limit": "2", "delimiter": "/"}, {"delimiter": "/", "marker": "b/"},
                   {"prefix": "zzz"}):
        plain, as_json = both(**params)
        assert plain == as_json, params
    assert both(delimiter="/")[0] == ["a", "b/", "c", "d.txt", "d/", "e"]
    assert both(prefix="d/", delimiter="/")[0] == ["d/x"]


def test_account_listing_and_stats(sw: Swift) -> None:
    for name in (f"acct{TAG}-a", f"acct{TAG}-b"):
        sw("PUT", "/" + name)
    sw("PUT", f"/acct{TAG}-a/one", data=b"123")
    entries = sw("GET", "", params={"format": "json", "prefix": f"acct{TAG}-"}).json()
    assert [(e["name"], e["count"], e["bytes"]) for e in entries] == [(f"acct{TAG}-a", 1, 3), (f"acct{TAG}-b", 0, 0)]
    assert sw("GET", "", params={"prefix": f"acct{TAG}-", "limit": "1"}).text == f"acct{TAG}-a\n"
    root = ET.fromstring(sw("GET", "", params={"format": "xml", "prefix": f"acct{TAG}-"}).content)
    assert root.tag == "account" and root.get("name") == "AUTH_default"
    assert [c.findtext("name") for c in root] == [f"acct{TAG}-a", f"acct{TAG}-b"]
    head = sw("HEAD", "")
    assert head.status_code == 204
    for header in ("X-Account-Container-Count", "X-Account-Object-Count", "X-Account-Bytes-Used"):
        assert int(head.headers[header]) >= 1


def test_user_create_prints_swift_credentials(cluster: LocalCluster) -> None:
    script = shutil.which("edgestore", path=str(Path(sys.executable).parent))
    argv = [script] if script else [sys.executable, "-m", "edgestore"]
    result = subprocess.run([*argv, "user", "create", f"swp{TAG}", "pat", "--swift-key", "pats-key", "--cluster",
                             str(cluster.data / "cluster.json")], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in result.stdout.strip().splitlines())}
    assert fields["swift user"] == f"swp{TAG}:pat" and fields["swift key"] == "pats-key"
    r = requests.get(cluster.url(2) + "/auth/v1.0", timeout=TIMEOUT_S,
                     headers={"X-Auth-User": fields["swift user"], "X-Auth-Key": fields["swift key"]})
    assert r.status_code == 200


def test_unexpected_failure_is_a_plain_500_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """No cluster needed: a services object whose user lookup breaks."""
    import asyncio
    from types import SimpleNamespace

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from edgestore.api.swift.router import SwiftApi

    class BrokenUsers:
        async def get(self, access_key: str) -> None:
            raise RuntimeError("disk on fire")

    services = SimpleNamespace(users=BrokenUsers(), config=SimpleNamespace(cluster_secret=b"s"))
    admin = User("default", "admin", "AKEY", "secret-key", True)
    token = make_token(b"s", admin, int(time.time()) + 60)

    async def run() -> tuple[int, str]:
        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", SwiftApi(services).handle)  # type: ignore[arg-type]
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/v1/AUTH_default", headers={"X-Auth-Token": token})
            return response.status, await response.text()

    with caplog.at_level("ERROR"):
        status, text = asyncio.run(run())
    assert status == 500
    assert "Traceback" not in text and "disk on fire" not in text
    errors = [r for r in caplog.records if r.levelname == "ERROR" and r.name.startswith("edgestore.api.swift")]
    assert len(errors) == 1 and errors[0].exc_info is not None


def test_short_upload_stores_nothing(cluster: LocalCluster, sw: Swift, container: str) -> None:
    import socket
    from urllib.parse import urlsplit

    target = urlsplit(sw.url + f"/{container}/short")
    assert target.hostname == "127.0.0.1"
    with socket.create_connection((target.hostname, target.port or 80), timeout=TIMEOUT_S) as conn:
        conn.sendall(f"PUT {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\nX-Auth-Token: {sw.token}\r\n"
                     f"Content-Length: 100000\r\n\r\n".encode() + b"x" * 10)
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(TIMEOUT_S)
        while conn.recv(65536):  # bounded by the timeout: the node answers or closes
            pass
    assert sw("HEAD", f"/{container}/short").status_code == 404
    assert sw("PUT", f"/{container}/short", data=b"whole").status_code == 201
