"""Probe-style: ask the ring where a bucket's records live, stop exactly one primary, and
check that the write went to the handoff the ring names, not merely to the two others."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

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
        for device in primaries[1:]:
            assert read_record(f"http://{device.ip}:{device.port}", device.device, secret, "object", name)
    finally:
        cluster.restart(dead)
    # The primary that missed the write is still served the newest version by any node.
    for index in range(cluster.nodes):
        got = make_s3(cluster.url(index), *cluster.credentials).get_object(Bucket=bucket, Key="key")
        assert got["Body"].read() == b"written while a primary was down"
