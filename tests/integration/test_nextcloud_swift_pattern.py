"""Replays, with raw HTTP, the Swift calls Nextcloud's (and ownCloud's) Swift primary
object store makes through php-opencloud: a Keystone v3 login, the object-store endpoint
picked from the catalog by region and interface, the container created on first use,
files stored as `urn:oid:<fileid>` objects, copies by COPY, and files over the segment
size (1 GiB there, 1 MiB here) uploaded as segments into `<container>_segments` under a
DLO manifest, read back whole and by range."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import requests
from clusterlib import LocalCluster

TIMEOUT_S = 30
SEGMENT_BYTES = 1024 * 1024     # Nextcloud uses 1 GiB; the pattern is the same
REGION = "RegionOne"


def keystone_login(cluster: LocalCluster) -> tuple[str, str]:
    """(token, object-store URL) as php-opencloud's Keystone v3 identity service gets them."""
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": cluster.info["user"], "password": cluster.credentials[1], "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": cluster.info["account"], "domain": {"name": "Default"}}}}}
    answer = requests.post(cluster.endpoint + "/v3/auth/tokens", json=body, timeout=TIMEOUT_S)
    assert answer.status_code == 201, answer.text
    token = answer.headers["X-Subject-Token"]
    catalog = answer.json()["token"]["catalog"]
    store = next(s for s in catalog if s["type"] == "object-store")
    endpoint = next(e for e in store["endpoints"] if e["interface"] == "public" and e["region"] == REGION)
    return token, endpoint["url"]


class Store:
    """The object store as Nextcloud's Swift class drives it."""

    def __init__(self, url: str, token: str, container: str) -> None:
        self.url, self.container = url.rstrip("/"), container
        self.session = requests.Session()
        self.session.headers["X-Auth-Token"] = token

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.url}/{path}", timeout=TIMEOUT_S, **kwargs)

    def ensure_container(self, name: str) -> None:
        if self.call("HEAD", name).status_code == 404:
            assert self.call("PUT", name).status_code == 201
        assert self.call("HEAD", name).status_code == 204

    def write(self, urn: str, data: bytes, mime: str) -> None:
        if len(data) <= SEGMENT_BYTES:
            answer = self.call("PUT", f"{self.container}/{urn}", data=data, headers={"Content-Type": mime})
            assert answer.status_code == 201, answer.text
            assert answer.headers["Etag"] == hashlib.md5(data).hexdigest()
            return
        segments = f"{self.container}_segments"
        self.ensure_container(segments)
        for index, start in enumerate(range(0, len(data), SEGMENT_BYTES)):
            piece = data[start:start + SEGMENT_BYTES]
            answer = self.call("PUT", f"{segments}/{urn}/{index:08d}", data=piece)
            assert answer.status_code == 201, answer.text
        answer = self.call("PUT", f"{self.container}/{urn}", data=b"",
                           headers={"X-Object-Manifest": f"{segments}/{urn}/", "Content-Type": mime})
        assert answer.status_code == 201, answer.text

    def read(self, urn: str, byte_range: str | None = None) -> bytes:
        headers = {"Range": f"bytes={byte_range}"} if byte_range else {}
        answer = self.call("GET", f"{self.container}/{urn}", headers=headers, stream=True)
        assert answer.status_code == (206 if byte_range else 200), answer.text
        return b"".join(answer.iter_content(65536))


def test_nextcloud_swift_primary_storage_call_pattern(cluster: LocalCluster) -> None:
    token, url = keystone_login(cluster)
    assert url.endswith("/v1/AUTH_" + cluster.info["account"])
    store = Store(url, token, f"nextcloud{os.getpid()}")
    store.ensure_container(store.container)     # 'autocreate' => true

    small = os.urandom(70_000)
    store.write("urn:oid:11", small, "image/jpeg")
    assert store.read("urn:oid:11") == small
    head = store.call("HEAD", f"{store.container}/urn:oid:11")
    assert head.status_code == 200 and head.headers["Content-Type"] == "image/jpeg"
    assert int(head.headers["Content-Length"]) == len(small)

    big = os.urandom(3 * SEGMENT_BYTES + 12345)
    store.write("urn:oid:12", big, "video/mp4")
    whole = store.read("urn:oid:12")
    assert hashlib.md5(whole).hexdigest() == hashlib.md5(big).hexdigest()
    span = f"{SEGMENT_BYTES - 100}-{2 * SEGMENT_BYTES + 99}"     # across two segment boundaries
    assert store.read("urn:oid:12", span) == big[SEGMENT_BYTES - 100:2 * SEGMENT_BYTES + 100]
    head = store.call("HEAD", f"{store.container}/urn:oid:12")
    assert int(head.headers["Content-Length"]) == len(big) and "X-Object-Manifest" in head.headers

    # Files are copied server-side (versions, trash restore): COPY with a Destination.
    copied = store.call("COPY", f"{store.container}/urn:oid:11",
                        headers={"Destination": f"{store.container}/urn:oid:13"})
    assert copied.status_code == 201
    assert store.read("urn:oid:13") == small

    # Another node serves the same token and data (Nextcloud talks to one endpoint, a
    # load balancer may put it anywhere).
    other = Store(url.replace(cluster.endpoint, cluster.url(2)), token, store.container)
    assert other.read("urn:oid:12", "0-9") == big[:10]

    # Deleting a file: its object, then (for a large one) the segments.
    for urn in ("urn:oid:11", "urn:oid:13", "urn:oid:12"):
        assert store.call("DELETE", f"{store.container}/urn:oid:{urn.split(':')[-1]}").status_code == 204
        assert store.call("HEAD", f"{store.container}/{urn}").status_code == 404
    listing = store.call("GET", f"{store.container}_segments", params={"format": "json", "prefix": "urn:oid:12/"})
    names = [entry["name"] for entry in listing.json()]
    assert len(names) == 4
    for name in names:
        assert store.call("DELETE", f"{store.container}_segments/{name}").status_code == 204
    assert store.call("GET", store.container, params={"format": "json"}).json() == []
