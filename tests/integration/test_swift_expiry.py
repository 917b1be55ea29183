"""Object expiry (X-Delete-At / X-Delete-After) on a real cluster: an expiring object is
served until its second comes, then gone for every read of both APIs before anything has
deleted it; the object-expirer job (run through the admin API) then deletes its record and
its index entry — unless a later PUT or POST changed the expiry. Bad values are 400s."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from clusterlib import LocalCluster

from edgestore.cli.connect import ClusterTarget, admin_request
from edgestore.cluster.rpc import EMPTY_DIGEST, path_with_query, signed_headers

swiftclient = pytest.importorskip("swiftclient")
from botocore.exceptions import ClientError  # noqa: E402
from swiftclient.client import ClientException, Connection  # noqa: E402

TAG = os.getpid()
ACCOUNT = "default"  # the account of the admin user `edgestore up` creates
MAX_WAIT_S = 5.0


@pytest.fixture
def container(swift_conn: Connection, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"ex{TAG}-{request.node.name[:40]}".lower().replace("_", "-")
    swift_conn.put_container(name)
    yield name


def wait_past(delete_at: int) -> None:
    """Sleep until this machine's clock (the nodes' clock) has reached delete_at."""
    pause = delete_at - time.time() + 0.2
    assert pause <= MAX_WAIT_S, "the test asked for a longer wait than it may take"
    time.sleep(max(pause, 0.0))


def run_expirer(cluster: LocalCluster) -> list[dict[str, Any]]:
    """One pass on every node, each working every queue (so the test does not depend on
    which node the ring makes responsible for which queue)."""
    target = [ClusterTarget(cluster.url(i), *cluster.credentials) for i in range(cluster.nodes)]
    return [admin_request(t, "POST", "/_admin/jobs/object-expirer/run", {"all_queues": True}) for t in target]


def replica_records(cluster: LocalCluster, kind: str, prefix: str) -> list[dict[str, Any]]:
    """The records of `kind` under `prefix` on every node's device, tombstones included,
    read straight from the stores through the signed internal API."""
    secret = Path(cluster.info["secret_file"]).read_text().strip().encode()
    path = path_with_query("/_internal/d1/list", {"kind": kind, "prefix": prefix, "limit": "10000"})
    found = []
    for i in range(cluster.nodes):
        request = urllib.request.Request(cluster.url(i) + path,
                                         headers=signed_headers(secret, "GET", path, EMPTY_DIGEST))
        with urllib.request.urlopen(request, timeout=10) as response:
            found += json.loads(response.read())
    return found


def index_entries(cluster: LocalCluster, container: str, key: str) -> list[dict[str, Any]]:
    suffix = f"/{ACCOUNT}/{container}/{key}"
    return [r for r in replica_records(cluster, "expiry", "") if r["name"].endswith(suffix)]


def plain_listing(swift_conn: Connection, container: str) -> list[str]:
    """A container's plain-text listing (swiftclient asks for JSON)."""
    url, token = swift_conn.get_auth()
    request = urllib.request.Request(f"{url}/{container}", headers={"X-Auth-Token": token})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode().splitlines()


def status(exc: pytest.ExceptionInfo[ClientException]) -> int:
    return int(exc.value.http_status)


def test_expired_object_is_gone_from_both_apis_and_the_expirer_deletes_it(
        cluster: LocalCluster, swift_conn: Connection, s3: Any, container: str) -> None:
    swift_conn.put_object(container, "keep.csv", b"kept")
    swift_conn.put_object(container, "sensor.csv", b"t=21.5\n" * 100, headers={"X-Delete-After": "2"})
    head = swift_conn.head_object(container, "sensor.csv")
    delete_at = int(head["x-delete-at"])
    assert time.time() < delete_at <= time.time() + 3
    assert swift_conn.get_object(container, "sensor.csv")[1] == b"t=21.5\n" * 100
    assert s3.head_object(Bucket=container, Key="sensor.csv")["ContentLength"] == 700
    assert plain_listing(swift_conn, container) == ["keep.csv", "sensor.csv"]
    live = [e for e in index_entries(cluster, container, "sensor.csv") if not e["deleted"]]
    assert len(live) >= 2  # written to a quorum before the object was acknowledged
    assert {e["name"].split("/")[1] for e in live} == {f"{delete_at:010d}"}

    wait_past(delete_at)
    for read in (swift_conn.head_object, swift_conn.get_object):
        with pytest.raises(ClientException) as exc:
            read(container, "sensor.csv")
        assert status(exc) == 404
    assert [o["name"] for o in swift_conn.get_container(container)[1]] == ["keep.csv"]
    assert plain_listing(swift_conn, container) == ["keep.csv"]   # names only: expiry judged all the same
    assert swift_conn.head_container(container)["x-container-object-count"] == "1"
    for call in (s3.head_object, s3.get_object):
        with pytest.raises(ClientError) as s3_exc:
            call(Bucket=container, Key="sensor.csv")
        assert s3_exc.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=container)["Contents"]] == ["keep.csv"]

    results = run_expirer(cluster)
    assert sum(r["expired"] for r in results) >= 1 and sum(r["errors"] for r in results) == 0
    records = replica_records(cluster, "object", f"{ACCOUNT}/{container}/sensor.csv")
    assert records and all(r["deleted"] for r in records)
    entries = index_entries(cluster, container, "sensor.csv")
    assert entries and all(e["deleted"] for e in entries)
    assert swift_conn.get_object(container, "keep.csv")[1] == b"kept"


def test_post_changes_and_removes_the_expiry(swift_conn: Connection, container: str) -> None:
    """...and an expired object, gone from listings, keeps no container from being deleted."""
    soon = int(time.time()) + 100
    swift_conn.put_object(container, "log", b"x", headers={"X-Delete-At": str(soon)})
    assert swift_conn.head_object(container, "log")["x-delete-at"] == str(soon)
    swift_conn.post_object(container, "log", headers={"X-Delete-At": str(soon + 50), "X-Object-Meta-A": "1"})
    head = swift_conn.head_object(container, "log")
    assert head["x-delete-at"] == str(soon + 50) and head["x-object-meta-a"] == "1"
    # Swift's way to keep an object for good: a POST without X-Delete-At (the header
    # `swift post -H "X-Remove-Delete-At:"` sends is only a reminder of that).
    swift_conn.post_object(container, "log", headers={"X-Remove-Delete-At": ""})
    assert "x-delete-at" not in swift_conn.head_object(container, "log")
    swift_conn.post_object(container, "log", headers={"X-Delete-After": "1"})
    wait_past(int(time.time()) + 2)
    with pytest.raises(ClientException) as exc:
        swift_conn.head_object(container, "log")
    assert status(exc) == 404
    swift_conn.delete_container(container)  # the record may still be there: the expirer runs later


def test_delete_answers_404_for_an_expired_or_missing_object(swift_conn: Connection, container: str) -> None:
    """As Swift does: a DELETE finds nothing to delete in an expired object, nor in one never
    written or already deleted; a live one is deleted (204) once."""
    swift_conn.put_object(container, "brief", b"x", headers={"X-Delete-After": "1"})
    swift_conn.put_object(container, "kept", b"y")
    wait_past(int(time.time()) + 2)
    for name in ("brief", "never-written"):
        with pytest.raises(ClientException) as exc:
            swift_conn.delete_object(container, name)
        assert status(exc) == 404
    swift_conn.delete_object(container, "kept")
    with pytest.raises(ClientException) as exc:
        swift_conn.delete_object(container, "kept")
    assert status(exc) == 404


def test_overwrite_without_expiry_makes_the_object_permanent(cluster: LocalCluster, swift_conn: Connection,
                                                              container: str) -> None:
    swift_conn.put_object(container, "reading", b"old", headers={"X-Delete-After": "1"})
    delete_at = int(swift_conn.head_object(container, "reading")["x-delete-at"])
    swift_conn.put_object(container, "reading", b"new")
    assert "x-delete-at" not in swift_conn.head_object(container, "reading")
    wait_past(delete_at)
    assert sum(r["stale"] for r in run_expirer(cluster)) >= 1
    assert swift_conn.get_object(container, "reading")[1] == b"new"
    records = replica_records(cluster, "object", f"{ACCOUNT}/{container}/reading")
    assert records and not any(r["deleted"] for r in records)
    entries = index_entries(cluster, container, "reading")
    assert entries and all(e["deleted"] for e in entries)  # the stale entry is dropped


def test_copies_keep_or_replace_the_expiry(swift_conn: Connection, container: str) -> None:
    later = int(time.time()) + 3600
    swift_conn.put_object(container, "src", b"data", headers={"X-Delete-At": str(later)})
    swift_conn.copy_object(container, "src", f"/{container}/kept")
    assert swift_conn.head_object(container, "kept")["x-delete-at"] == str(later)
    swift_conn.copy_object(container, "src", f"/{container}/fresh", fresh_metadata=True)
    assert "x-delete-at" not in swift_conn.head_object(container, "fresh")
    swift_conn.put_object(container, "other", b"", headers={"X-Copy-From": f"/{container}/src",
                                                      "X-Delete-At": str(later + 1)})
    assert swift_conn.head_object(container, "other")["x-delete-at"] == str(later + 1)


def test_expiry_in_a_versioned_bucket_leaves_a_delete_marker(cluster: LocalCluster, swift_conn: Connection, s3: Any,
                                                             container: str) -> None:
    s3.put_bucket_versioning(Bucket=container, VersioningConfiguration={"Status": "Enabled"})
    swift_conn.put_object(container, "v", b"one")
    swift_conn.put_object(container, "v", b"two", headers={"X-Delete-After": "1"})
    delete_at = int(swift_conn.head_object(container, "v")["x-delete-at"])
    wait_past(delete_at)
    assert sum(r["expired"] for r in run_expirer(cluster)) >= 1
    listed = s3.list_object_versions(Bucket=container, Prefix="v")
    assert [m["IsLatest"] for m in listed.get("DeleteMarkers", [])] == [True]
    assert len(listed["Versions"]) == 2  # both versions kept, as a DELETE keeps them


@pytest.mark.parametrize("headers, message", [
    ({"X-Delete-At": "tomorrow"}, "Non-integer X-Delete-At"),
    ({"X-Delete-At": "1.5"}, "Non-integer X-Delete-At"),
    ({"X-Delete-At": "1000"}, "X-Delete-At in past"),
    ({"X-Delete-At": "-5"}, "X-Delete-At in past"),
    ({"X-Delete-After": "soon"}, "Non-integer X-Delete-After"),
    ({"X-Delete-After": "-10"}, "X-Delete-After in past"),
    ({"X-Delete-After": "0"}, "X-Delete-After in past"),
])
def test_bad_expiry_values_are_refused(swift_conn: Connection, container: str, headers: dict[str, str],
                                       message: str) -> None:
    with pytest.raises(ClientException) as exc:
        swift_conn.put_object(container, "bad", b"body", headers=headers)
    assert status(exc) == 400 and exc.value.http_response_content.decode() == message
    with pytest.raises(ClientException) as exc:
        swift_conn.head_object(container, "bad")
    assert status(exc) == 404  # nothing stored
    swift_conn.put_object(container, "good", b"body")
    with pytest.raises(ClientException) as exc:
        swift_conn.post_object(container, "good", headers=headers)
    assert status(exc) == 400 and exc.value.http_response_content.decode() == message
    assert "x-delete-at" not in swift_conn.head_object(container, "good")
