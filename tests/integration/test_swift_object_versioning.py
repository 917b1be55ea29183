"""Swift's object versioning (X-Versions-Enabled) on a real cluster, through
python-swiftclient (and raw HTTP where swiftclient has no call): version ids on writes and
reads, delete markers, addressing a version with ?version-id, the ?versions listing and
its paging, suspending, the legacy modes kept apart, and the same versions seen by S3."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import requests
from clusterlib import LocalCluster

swiftclient = pytest.importorskip("swiftclient")
from swiftclient.client import ClientException, Connection  # noqa: E402

TAG = os.getpid()
MARKER_TYPE = "application/x-deleted;swift_versions_deleted=1"


def new_container(conn: Connection, label: str, enabled: bool | None = True) -> str:
    name = f"ov{TAG}-{label}-{time.monotonic_ns() % 10**9}"
    conn.put_container(name, headers={} if enabled is None else {"X-Versions-Enabled": str(enabled).lower()})
    return name


def put(conn: Connection, container: str, obj: str, body: bytes, query: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {}
    conn.put_object(container, obj, body, query_string=query, response_dict=answer)
    return dict(answer["headers"])


def versions(conn: Connection, container: str, **params: Any) -> list[dict[str, Any]]:
    return list(conn.get_container(container, query_string="versions", **params)[1])


def status_of(call: Any) -> int:
    try:
        call()
    except ClientException as exc:
        return int(exc.http_status)
    return 200


def raw(conn: Connection, method: str, path: str, **kwargs: Any) -> requests.Response:
    url, token = conn.get_auth()
    return requests.request(method, f"{url}/{path}", headers={"X-Auth-Token": token, **kwargs.pop("headers", {})},
                            timeout=30, **kwargs)


def test_every_write_to_an_enabled_container_is_a_version_that_can_be_read_by_id(swift_conn: Connection) -> None:
    container = new_container(swift_conn, "ids")
    assert swift_conn.head_container(container)["x-versions-enabled"] == "True"
    ids = [put(swift_conn, container, "doc", body)["x-object-version-id"] for body in (b"one", b"two", b"three")]
    assert len(set(ids)) == 3
    headers, body = swift_conn.get_object(container, "doc")
    assert body == b"three" and headers["x-object-version-id"] == ids[2]
    for version_id, expected in zip(ids, (b"one", b"two", b"three"), strict=True):
        headers, body = swift_conn.get_object(container, "doc", query_string=f"version-id={version_id}")
        assert body == expected and headers["x-object-version-id"] == version_id
    assert swift_conn.head_object(container, "doc", query_string=f"version-id={ids[0]}")["content-length"] == "3"
    listed = versions(swift_conn, container)
    assert [(v["name"], v["version_id"], v["is_latest"], v["bytes"]) for v in listed] == [
        ("doc", ids[2], True, 5), ("doc", ids[1], False, 3), ("doc", ids[0], False, 3)]
    assert all(v["hash"] and v["content_type"] and v["last_modified"] for v in listed)
    swift_conn.post_object(container, "doc", headers={"X-Object-Meta-Note": "metadata only"})
    assert len(versions(swift_conn, container)) == 3  # a POST makes no version
    assert [o["name"] for o in swift_conn.get_container(container)[1]] == ["doc"]  # the plain listing: current only


def test_a_delete_leaves_a_marker_over_the_versions_until_the_marker_is_deleted(swift_conn: Connection) -> None:
    container = new_container(swift_conn, "marker")
    first = put(swift_conn, container, "doc", b"one")["x-object-version-id"]
    second = put(swift_conn, container, "doc", b"two")["x-object-version-id"]
    answer: dict[str, Any] = {}
    swift_conn.delete_object(container, "doc", response_dict=answer)
    marker = answer["headers"]["x-object-version-id"]
    assert marker not in (first, second)
    assert status_of(lambda: swift_conn.head_object(container, "doc")) == 404
    assert swift_conn.get_container(container)[1] == []
    listed = versions(swift_conn, container)
    assert [(v["version_id"], v["is_latest"], v["content_type"], v["bytes"]) for v in listed] == [
        (marker, True, MARKER_TYPE, 0), (second, False, "application/octet-stream", 3),
        (first, False, "application/octet-stream", 3)]
    got = raw(swift_conn, "GET", f"{container}/doc?version-id={marker}")
    assert got.status_code == 404 and got.headers["X-Object-Version-Id"] == marker
    assert swift_conn.get_object(container, "doc", query_string=f"version-id={first}")[1] == b"one"
    # Deleting the marker by its id: no marker is written, and the newest version is back.
    swift_conn.delete_object(container, "doc", query_string=f"version-id={marker}", response_dict=answer)
    assert answer["headers"]["x-object-version-id"] == marker
    assert answer["headers"]["x-object-current-version-id"] == second
    assert swift_conn.get_object(container, "doc")[1] == b"two"
    assert [v["version_id"] for v in versions(swift_conn, container)] == [second, first]


def test_a_version_deleted_by_id_is_gone_for_good_and_the_rest_stay(swift_conn: Connection) -> None:
    container = new_container(swift_conn, "byid")
    ids = [put(swift_conn, container, "doc", body)["x-object-version-id"] for body in (b"one", b"two", b"three")]
    answer: dict[str, Any] = {}
    swift_conn.delete_object(container, "doc", query_string=f"version-id={ids[1]}", response_dict=answer)
    assert answer["headers"]["x-object-current-version-id"] == ids[2]
    assert [v["version_id"] for v in versions(swift_conn, container)] == [ids[2], ids[0]]
    assert status_of(lambda: swift_conn.get_object(container, "doc", query_string=f"version-id={ids[1]}")) == 404
    assert status_of(lambda: swift_conn.delete_object(container, "doc", query_string=f"version-id={ids[1]}")) == 404
    assert swift_conn.get_object(container, "doc")[1] == b"three"
    # The current version deleted by id: the next newest becomes current (S3's rule).
    swift_conn.delete_object(container, "doc", query_string=f"version-id={ids[2]}")
    assert swift_conn.get_object(container, "doc")[1] == b"one"
    swift_conn.delete_object(container, "doc", query_string=f"version-id={ids[0]}")
    assert status_of(lambda: swift_conn.head_object(container, "doc")) == 404
    assert versions(swift_conn, container) == []
    swift_conn.delete_container(container)  # no versions left: the container can go


def test_a_put_with_a_version_id_and_no_body_brings_that_version_back(swift_conn: Connection) -> None:
    container = new_container(swift_conn, "restore")
    first = put(swift_conn, container, "doc", b"one")["x-object-version-id"]
    swift_conn.post_object(container, "doc", headers={"X-Object-Meta-Color": "blue", "Content-Type": "text/plain"})
    put(swift_conn, container, "doc", b"two")
    restored = put(swift_conn, container, "doc", b"", query=f"version-id={first}")["x-object-version-id"]
    headers, body = swift_conn.get_object(container, "doc")
    assert body == b"one" and headers["x-object-meta-color"] == "blue" and headers["content-type"] == "text/plain"
    assert headers["x-object-version-id"] == restored and restored != first
    assert len(versions(swift_conn, container)) == 3
    assert status_of(lambda: put(swift_conn, container, "doc", b"body", query=f"version-id={first}")) == 400
    assert status_of(lambda: put(swift_conn, container, "doc", b"", query="version-id=0000ffff")) == 404
    assert raw(swift_conn, "POST", f"{container}/doc?version-id={first}").status_code == 400
    # COPY from a version
    copied = raw(swift_conn, "COPY", f"{container}/doc?version-id={first}", headers={"Destination": f"{container}/c"})
    assert copied.status_code == 201 and "X-Object-Version-Id" in copied.headers
    assert swift_conn.get_object(container, "c")[1] == b"one"


def test_suspended_versioning_keeps_the_old_versions_and_overwrites_the_null_one(swift_conn: Connection) -> None:
    container = new_container(swift_conn, "suspend")
    kept = put(swift_conn, container, "doc", b"versioned")["x-object-version-id"]
    swift_conn.post_container(container, headers={"X-Versions-Enabled": "false"})
    assert swift_conn.head_container(container)["x-versions-enabled"] == "False"
    assert "x-object-version-id" not in put(swift_conn, container, "doc", b"first null")
    put(swift_conn, container, "doc", b"second null")
    headers, body = swift_conn.get_object(container, "doc")
    assert body == b"second null" and headers["x-object-version-id"] == "null"
    assert [(v["version_id"], v["is_latest"]) for v in versions(swift_conn, container)] == [
        ("null", True), (kept, False)]
    assert swift_conn.get_object(container, "doc", query_string=f"version-id={kept}")[1] == b"versioned"
    swift_conn.post_container(container, headers={"X-Versions-Enabled": "true"})
    again = put(swift_conn, container, "doc", b"enabled again")["x-object-version-id"]
    assert [v["version_id"] for v in versions(swift_conn, container)] == [again, "null", kept]
    assert swift_conn.get_object(container, "doc", query_string="version-id=null")[1] == b"second null"


def test_the_legacy_modes_and_object_versioning_exclude_each_other(swift_conn: Connection) -> None:
    archive = new_container(swift_conn, "archive", enabled=None)
    legacy = f"ov{TAG}-legacy-{time.monotonic_ns() % 10**9}"
    swift_conn.put_container(legacy, headers={"X-Versions-Location": archive})
    assert status_of(lambda: swift_conn.post_container(legacy, headers={"X-Versions-Enabled": "true"})) == 400
    assert "x-versions-enabled" not in swift_conn.head_container(legacy)
    # Turning the legacy mode off in the same request lets the new one on.
    swift_conn.post_container(legacy, headers={"X-Remove-Versions-Location": "x", "X-Versions-Enabled": "true"})
    assert swift_conn.head_container(legacy)["x-versions-enabled"] == "True"
    modern = new_container(swift_conn, "modern")
    assert status_of(lambda: swift_conn.post_container(modern, headers={"X-History-Location": archive})) == 400
    both = f"ov{TAG}-both-{time.monotonic_ns() % 10**9}"
    assert status_of(lambda: swift_conn.put_container(
        both, headers={"X-Versions-Enabled": "true", "X-Versions-Location": archive})) == 400
    assert status_of(lambda: swift_conn.head_container(both)) == 404
    unversioned = new_container(swift_conn, "plain", enabled=None)
    put(swift_conn, unversioned, "doc", b"x")
    assert "x-versions-enabled" not in swift_conn.head_container(unversioned)
    assert status_of(lambda: swift_conn.get_object(unversioned, "doc", query_string="version-id=abc")) == 400
    assert swift_conn.get_object(unversioned, "doc", query_string="version-id=null")[1] == b"x"
    assert status_of(lambda: swift_conn.get_object(modern, "doc", query_string="version-id=a.b")) == 400


def test_a_versions_listing_pages_by_marker_and_version_marker(swift_conn: Connection) -> None:
    container = new_container(swift_conn, "pages")
    expected = []
    for name, count in (("a", 4), ("b/x", 2), ("b/y", 1), ("c", 2)):
        ids = [put(swift_conn, container, name, b"%d" % i)["x-object-version-id"] for i in range(count)]
        expected += [(name, version_id) for version_id in reversed(ids)]
    seen = [(v["name"], v["version_id"]) for v in versions(swift_conn, container)]
    assert seen == expected
    # Paging as a client does: marker and version_marker from the last entry of a page.
    # (swiftclient's full_listing drops query_string, so ?versions, on its later pages.)
    paged: list[tuple[str, str]] = []
    for _ in range(10):
        after = {"marker": paged[-1][0], "version_marker": paged[-1][1]} if paged else {}
        page = versions(swift_conn, container, limit=3, **after)
        if not page:
            break
        paged += [(v["name"], v["version_id"]) for v in page]
    assert paged == expected
    page = versions(swift_conn, container, marker="a", version_marker=expected[1][1], limit=3)
    assert [(v["name"], v["version_id"]) for v in page] == expected[2:5]
    assert [(v["name"], v["version_id"]) for v in versions(swift_conn, container, marker="a")] == expected[4:]
    backwards = raw(swift_conn, "GET", container, params={"versions": "", "reverse": "true", "format": "json"}).json()
    assert [(v["name"], v["version_id"]) for v in backwards] == expected[::-1]
    rolled = versions(swift_conn, container, delimiter="/")
    assert [v.get("subdir") or v["name"] for v in rolled] == ["a"] * 4 + ["b/"] + ["c"] * 2
    assert [v["name"] for v in versions(swift_conn, container, prefix="b/")] == ["b/x", "b/x", "b/y"]
    assert raw(swift_conn, "GET", container, params={"versions": "", "format": "xml"}).status_code == 406
    assert raw(swift_conn, "GET", container, params={"versions": "", "version_marker": "x"}).status_code == 400
    assert status_of(lambda: swift_conn.delete_container(container)) == 409


def test_swift_and_s3_see_the_same_versions(swift_conn: Connection, s3: Any, cluster: LocalCluster) -> None:
    container = new_container(swift_conn, "s3")
    assert s3.get_bucket_versioning(Bucket=container)["Status"] == "Enabled"
    by_swift = put(swift_conn, container, "doc", b"from swift")["x-object-version-id"]
    by_s3 = s3.put_object(Bucket=container, Key="doc", Body=b"from s3")["VersionId"]
    assert [v["version_id"] for v in versions(swift_conn, container)] == [by_s3, by_swift]
    listed = s3.list_object_versions(Bucket=container)["Versions"]
    assert [(v["VersionId"], v["IsLatest"]) for v in listed] == [(by_s3, True), (by_swift, False)]
    assert s3.get_object(Bucket=container, Key="doc", VersionId=by_swift)["Body"].read() == b"from swift"
    s3.put_bucket_versioning(Bucket=container, VersioningConfiguration={"Status": "Suspended"})
    assert swift_conn.head_container(container)["x-versions-enabled"] == "False"
    info = requests.get(cluster.endpoint + "/info", timeout=30).json()
    assert "object_versioning" in info
