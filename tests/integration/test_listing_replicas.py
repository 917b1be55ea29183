"""Delimiter listings and bucket counters over replicas that disagree: replicas roll common
prefixes up and keep the counts, so a prefix whose objects were all deleted must not come
back from a replica that missed the deletes, and Swift's counts must follow the replica
that saw the newest change, then agree again once repair has run."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import requests
from clusterlib import LocalCluster
from conftest import make_s3
from opslib import cluster_with_repair_interval, locate, repair_until_converged

TIMEOUT_S = 30


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    # No scheduled repair: a replica that missed writes stays stale until a test repairs it.
    with cluster_with_repair_interval(tmp_path_factory.mktemp("listing"), 3600) as local:
        yield local


def swift_at(cluster: LocalCluster, index: int) -> tuple[str, dict[str, str]]:
    """(storage URL, auth headers) of the default admin, through node `index`."""
    r = requests.get(cluster.url(index) + "/auth/v1.0", timeout=TIMEOUT_S,
                     headers={"X-Auth-User": "default:admin", "X-Auth-Key": cluster.credentials[1]})
    assert r.status_code == 200, r.text
    return r.headers["X-Storage-Url"], {"X-Auth-Token": r.headers["X-Auth-Token"]}


def counts(cluster: LocalCluster, index: int, container: str) -> tuple[int, int]:
    url, auth = swift_at(cluster, index)
    r = requests.head(f"{url}/{container}", headers=auth, timeout=TIMEOUT_S)
    assert r.status_code == 204, r.text
    return int(r.headers["X-Container-Object-Count"]), int(r.headers["X-Container-Bytes-Used"])


def listing(s3: Any, bucket: str, **kwargs: Any) -> tuple[list[str], list[str]]:
    page = s3.list_objects_v2(Bucket=bucket, Delimiter="/", **kwargs)
    return [c["Key"] for c in page.get("Contents", [])], [p["Prefix"] for p in page.get("CommonPrefixes", [])]


def test_counts_follow_overwrites_and_deletes(cluster: LocalCluster) -> None:
    s3 = make_s3(cluster.endpoint, *cluster.credentials)
    s3.create_bucket(Bucket="counted")
    for key, size in (("a", 10), ("b", 20), ("c/d", 30)):
        s3.put_object(Bucket="counted", Key=key, Body=b"x" * size)
    assert counts(cluster, 0, "counted") == (3, 60)
    s3.put_object(Bucket="counted", Key="a", Body=b"x" * 5)
    s3.delete_object(Bucket="counted", Key="b")
    s3.delete_object(Bucket="counted", Key="never-there")
    assert counts(cluster, 1, "counted") == (2, 35)
    url, auth = swift_at(cluster, 2)
    account = requests.head(url, headers=auth, timeout=TIMEOUT_S)
    assert int(account.headers["X-Account-Object-Count"]) >= 2


def test_a_prefix_of_deleted_objects_is_not_listed(cluster: LocalCluster) -> None:
    s3 = make_s3(cluster.endpoint, *cluster.credentials)
    s3.create_bucket(Bucket="emptied")
    for key in ("dir/a", "dir/b", "keep/a", "top"):
        s3.put_object(Bucket="emptied", Key=key, Body=b"x")
    assert listing(s3, "emptied") == (["top"], ["dir/", "keep/"])
    s3.delete_objects(Bucket="emptied", Delete={"Objects": [{"Key": "dir/a"}, {"Key": "dir/b"}]})
    assert listing(s3, "emptied") == (["top"], ["keep/"])
    assert listing(s3, "emptied", MaxKeys=1) == ([], ["keep/"])


def test_a_replica_that_missed_deletes_does_not_bring_their_prefix_back(cluster: LocalCluster) -> None:
    s3 = make_s3(cluster.endpoint, *cluster.credentials)
    s3.create_bucket(Bucket="stale")
    for key in ("gone/a", "gone/b", "kept/a", "top"):
        s3.put_object(Bucket="stale", Key=key, Body=b"x" * 10)
    urls = [cluster.url(i).rstrip("/") for i in range(len(cluster.info["nodes"]))]
    replicas = [urls.index(r["node"].rstrip("/")) for r in locate(cluster, "stale", "gone/a")["replicas"]]
    stale = next(i for i in replicas if i != 0)   # node 0 takes the writes meanwhile
    cluster.kill(stale)
    try:
        s3.delete_object(Bucket="stale", Key="gone/a")
        s3.delete_object(Bucket="stale", Key="gone/b")
        s3.put_object(Bucket="stale", Key="new", Body=b"x" * 7)
    finally:
        cluster.restart(stale)
    # Through the stale node, whose own replica is one of the quorum each listing reads.
    at_stale = make_s3(cluster.url(stale), *cluster.credentials)
    assert listing(at_stale, "stale") == (["new", "top"], ["kept/"])
    url, auth = swift_at(cluster, stale)
    r = requests.get(f"{url}/stale?delimiter=/", headers=auth, timeout=TIMEOUT_S)
    assert r.text.split() == ["kept/", "new", "top"]
    # The counters, read with the listing's page and on their own: the replica with the newest change.
    assert (int(r.headers["X-Container-Object-Count"]), int(r.headers["X-Container-Bytes-Used"])) == (3, 27)
    assert counts(cluster, stale, "stale") == (3, 27)
    repair_until_converged(cluster)
    assert listing(at_stale, "stale") == (["new", "top"], ["kept/"])
    assert {counts(cluster, i, "stale") for i in range(len(urls))} == {(3, 27)}
