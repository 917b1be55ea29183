"""Probe-style: ask the ring where a bucket's records live, stop exactly one primary, and
check that the write went to the handoff the ring names, not merely to the two others, and
that a read through any node (the stopped one too, once back) sees what it missed."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from botocore.exceptions import ClientError
from conftest import make_s3
from edgestore.ring import load_ring

from edgestore.cluster.rpc import EMPTY_DIGEST, signed_headers


def read_record(url: str, device: str, secret: bytes, kind: str, name: str) -> dict[str, Any] | None:
    path = f"/_internal/{device}/record?" + urlencode(sorted({"kind": kind, "name": name}.items()),
                                                       quote_via=quote, safe="")
    request = urllib.request.Request(url + path, headers=signed_headers(secret, "GET", path, EMPTY_DIGEST))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def test_write_with_a_primary_down_lands_on_the_first_handoff(cluster: Any) -> None:
    secret = Path(cluster.info["secret_file"]).read_text().strip().encode()
    ring = load_ring(cluster.info["ring"])
    account, bucket = cluster.info["account"], "handoff-probe"
    part = ring.partition(account, bucket)
    primaries = ring.primaries(part)
    handoff = next(iter(ring.handoffs(part)))
    index_of = {int(n["url"].rsplit(":", 1)[1]): i for i, n in enumerate(cluster.info["nodes"])}
    dead = index_of[primaries[0].port]
    coordinator = index_of[handoff.port]  # any live node may coordinate; use the handoff's
    s3 = make_s3(cluster.url(coordinator), *cluster.credentials)
    s3.create_bucket(Bucket=bucket)
    name = f"{account}/{bucket}/key"
    cluster.kill(dead)
    try:
        s3.put_object(Bucket=bucket, Key="key", Body=b"written while a primary was down")
        on_handoff = read_record(f"http://{handoff.ip}:{handoff.port}", handoff.device, secret, "object", name)
        assert on_handoff is not None and not on_handoff["deleted"]
        # The write went to the handoff and the two live primaries; an acknowledgement needs
        # two of the three, and a straggler past the grace period is cancelled (anti-entropy
        # finishes it), so on a loaded machine only one primary is certain to have it yet.
        on_primaries = [read_record(f"http://{d.ip}:{d.port}", d.device, secret, "object", name)
                        for d in primaries[1:]]
        assert any(on_primaries)
    finally:
        cluster.restart(dead)
    # The primary that missed the write is still served the newest version by any node.
    for index in range(cluster.nodes):
        got = make_s3(cluster.url(index), *cluster.credentials).get_object(Bucket=bucket, Key="key")
        assert got["Body"].read() == b"written while a primary was down"


def test_a_replica_that_missed_an_overwrite_still_reads_the_newest_version(cluster: Any) -> None:
    """A read asks only a quorum, its own replica first: the node whose replica missed an
    overwrite (it was down) must still serve the overwrite, as must every other node,
    both while it is down and after it is back."""
    ring = load_ring(cluster.info["ring"])
    account, bucket = cluster.info["account"], "quorum-read-probe"
    primaries = ring.primaries(ring.partition(account, bucket))
    index_of = {int(n["url"].rsplit(":", 1)[1]): i for i, n in enumerate(cluster.info["nodes"])}
    stale = index_of[primaries[1].port]
    writer = index_of[primaries[2].port]
    s3 = make_s3(cluster.url(writer), *cluster.credentials)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="key", Body=b"first version")
    s3.put_object(Bucket=bucket, Key="gone", Body=b"deleted while a replica was down")
    cluster.kill(stale)
    try:
        s3.put_object(Bucket=bucket, Key="key", Body=b"second version")
        s3.delete_object(Bucket=bucket, Key="gone")
        for index in range(cluster.nodes):
            if index != stale:
                assert_newest(make_s3(cluster.url(index), *cluster.credentials), bucket)
    finally:
        cluster.restart(stale)
    for index in [stale, *range(cluster.nodes)]:
        assert_newest(make_s3(cluster.url(index), *cluster.credentials), bucket)


def assert_newest(s3: Any, bucket: str) -> None:
    assert s3.get_object(Bucket=bucket, Key="key")["Body"].read() == b"second version"
    assert s3.head_object(Bucket=bucket, Key="key")["ContentLength"] == len(b"second version")
    try:
        s3.head_object(Bucket=bucket, Key="gone")
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "404"
    else:
        raise AssertionError("a deleted object is still served")
