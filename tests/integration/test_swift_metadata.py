"""Swift account and container metadata on a real cluster: POST sets, merges and removes
(empty value, X-Remove-*), Swift's limits answer 400 and store nothing, a PUT of an
existing container updates it, S3 keeps seeing the same bucket, and container quotas."""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest
from clusterlib import LocalCluster
from swiftlib import Swift, swift_login

swiftclient = pytest.importorskip("swiftclient")
from swiftclient.client import ClientException, Connection  # noqa: E402

TAG = os.getpid()


@pytest.fixture(scope="module")
def conn(cluster: LocalCluster) -> Connection:
    return Connection(authurl=cluster.endpoint + "/auth/v1.0", user="default:admin",
                      key=cluster.credentials[1], retries=0, timeout=30)


@pytest.fixture(scope="module")
def sw(cluster: LocalCluster) -> Swift:
    return swift_login(cluster, "default:admin", cluster.credentials[1])


@pytest.fixture
def container(conn: Connection, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"md{TAG}-{request.node.name[:40]}".lower().replace("_", "-")
    conn.put_container(name)
    yield name


def meta_of(headers: dict[str, str], kind: str) -> dict[str, str]:
    prefix = f"x-{kind}-meta-"
    return {k[len(prefix):]: v for k, v in headers.items() if k.lower().startswith(prefix)}


def clear_account_meta(conn: Connection) -> None:
    names = meta_of(conn.head_account(), "account")
    conn.post_account({f"X-Remove-Account-Meta-{name}": "x" for name in names})


def test_account_post_sets_merges_and_removes(conn: Connection, sw: Swift) -> None:
    clear_account_meta(conn)
    try:
        conn.post_account({"X-Account-Meta-Color": "blue", "X-Account-Meta-Shape": "round"})
        assert meta_of(conn.head_account(), "account") == {"color": "blue", "shape": "round"}
        # A POST merges: what it does not name stays.
        conn.post_account({"X-Account-Meta-Color": "red", "X-Account-Meta-Size": "9"})
        assert meta_of(conn.head_account(), "account") == {"color": "red", "shape": "round", "size": "9"}
        # An empty value removes, and so does X-Remove-Account-Meta-*.
        conn.post_account({"X-Account-Meta-Color": "", "X-Remove-Account-Meta-Shape": "anything"})
        assert meta_of(conn.head_account(), "account") == {"size": "9"}
        # GET (a listing) carries the same headers.
        headers, _ = conn.get_account()
        assert meta_of(headers, "account") == {"size": "9"}
        r = sw("POST", "", headers={"X-Account-Meta-Raw": "value"})
        assert r.status_code == 204 and r.content == b""
        assert sw("HEAD", "").headers["X-Account-Meta-Raw"] == "value"
    finally:
        clear_account_meta(conn)


@pytest.mark.parametrize("kind", ["account", "container"])
def test_metadata_over_swifts_limits_is_400_and_stores_nothing(sw: Swift, kind: str) -> None:
    path = "" if kind == "account" else f"/lim{TAG}-{kind}"
    if path:
        assert sw("PUT", path).status_code == 201
    prefix = f"X-{kind.title()}-Meta-"
    bad: dict[str, dict[str, str]] = {
        "name too long": {prefix + "n" * 129: "v"},
        "value too long": {prefix + "big": "v" * 257},
        "too many": {f"{prefix}k{i}": "v" for i in range(91)},
        "too large overall": {f"{prefix}k{i}": "v" * 250 for i in range(17)},
    }
    for what, headers in bad.items():
        r = sw("POST", path, headers=headers)
        assert r.status_code == 400, what
        assert "Traceback" not in r.text
        assert not meta_of(dict(sw("HEAD", path).headers), kind), what
    # At the limits is fine.
    ok = {prefix + "n" * 128: "v" * 256}
    assert sw("POST", path, headers=ok).status_code == 204
    # Items added by one POST after another count together: the record cannot grow unbounded.
    assert sw("POST", path, headers={f"{prefix}a{i}": "v" for i in range(89)}).status_code == 204
    assert sw("POST", path, headers={f"{prefix}b{i}": "v" for i in range(2)}).status_code == 400
    stored = meta_of(dict(sw("HEAD", path).headers), kind)
    assert len(stored) == 90 and "n" * 128 in stored
    removals = {f"X-Remove-{kind.title()}-Meta-{name}": "x" for name in stored}
    assert sw("POST", path, headers=removals).status_code == 204
    assert not meta_of(dict(sw("HEAD", path).headers), kind)


def test_container_post_merges_and_removes(conn: Connection, container: str) -> None:
    conn.post_container(container, {"X-Container-Meta-Color": "blue", "X-Container-Meta-Owner": "ops"})
    assert meta_of(conn.head_container(container), "container") == {"color": "blue", "owner": "ops"}
    conn.post_container(container, {"X-Container-Meta-Color": "green"})
    assert meta_of(conn.head_container(container), "container") == {"color": "green", "owner": "ops"}
    conn.post_container(container, {"X-Container-Meta-Color": "", "X-Remove-Container-Meta-Owner": "1",
                                    "X-Container-Meta-Kept": "yes"})
    assert meta_of(conn.head_container(container), "container") == {"kept": "yes"}
    headers, _ = conn.get_container(container)
    assert meta_of(headers, "container") == {"kept": "yes"}
    assert headers["x-container-object-count"] == "0"


def test_container_put_with_metadata_creates_and_updates(sw: Swift) -> None:
    name = f"/mdput{TAG}"
    r = sw("PUT", name, headers={"X-Container-Meta-One": "1", "X-Container-Read": ".r:*"})
    assert r.status_code == 201
    head = sw("HEAD", name)
    assert head.headers["X-Container-Meta-One"] == "1" and head.headers["X-Container-Read"] == ".r:*"
    # PUT of an existing container merges, as POST does, and answers 202.
    r = sw("PUT", name, headers={"X-Container-Meta-Two": "2", "X-Remove-Container-Read": "x"})
    assert r.status_code == 202
    head = sw("HEAD", name)
    assert meta_of(dict(head.headers), "container") == {"one": "1", "two": "2"}
    assert "X-Container-Read" not in head.headers
    # A plain PUT changes nothing.
    assert sw("PUT", name).status_code == 202
    assert meta_of(dict(sw("HEAD", name).headers), "container") == {"one": "1", "two": "2"}


def test_post_to_a_missing_container_is_404(conn: Connection) -> None:
    with pytest.raises(ClientException) as exc:
        conn.post_container(f"nothere{TAG}", {"X-Container-Meta-A": "b"})
    assert exc.value.http_status == 404


def test_s3_still_sees_the_bucket_and_keeps_swift_metadata(conn: Connection, s3: Any, container: str) -> None:
    conn.post_container(container, {"X-Container-Meta-Color": "blue", "X-Container-Write": "default:admin"})
    s3.head_bucket(Bucket=container)
    s3.put_object(Bucket=container, Key="via-s3", Body=b"s3 body")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=container)["Contents"]] == ["via-s3"]
    # S3 changes to the bucket record keep what Swift stored in it.
    s3.put_bucket_versioning(Bucket=container, VersioningConfiguration={"Status": "Suspended"})
    s3.put_bucket_acl(Bucket=container, ACL="private")
    head = conn.head_container(container)
    assert meta_of(head, "container") == {"color": "blue"}
    assert head["x-container-write"] == "default:admin"
    assert head["x-container-object-count"] == "1"
    assert conn.get_object(container, "via-s3")[1] == b"s3 body"


def test_container_quotas_answer_413(sw: Swift, container: str) -> None:
    path = "/" + container
    for bad in ("-1", "ten", "1.5"):
        assert sw("POST", path, headers={"X-Container-Meta-Quota-Bytes": bad}).status_code == 400
        assert sw("POST", path, headers={"X-Container-Meta-Quota-Count": bad}).status_code == 400
    assert sw("POST", path, headers={"X-Container-Meta-Quota-Bytes": "10",
                                     "X-Container-Meta-Quota-Count": "2"}).status_code == 204
    assert sw("PUT", path + "/a", data=b"123456").status_code == 201
    r = sw("PUT", path + "/b", data=b"12345")  # 6 + 5 > 10
    assert r.status_code == 413 and "quota" in r.text.lower()
    assert sw("HEAD", path + "/b").status_code == 404
    assert sw("PUT", path + "/b", data=b"1234").status_code == 201  # 6 + 4 = 10
    assert sw("PUT", path + "/c", data=b"").status_code == 413  # a third object
    assert sw("POST", path, headers={"X-Remove-Container-Meta-Quota-Count": "x",
                                     "X-Remove-Container-Meta-Quota-Bytes": "x"}).status_code == 204
    assert sw("PUT", path + "/c", data=b"more than ten bytes").status_code == 201
