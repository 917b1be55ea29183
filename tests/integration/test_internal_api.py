"""The node-to-node API refuses anything not signed with the cluster secret, or stale."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from edgestore.cluster.rpc import EMPTY_DIGEST, body_digest, sign, signed_headers
from edgestore.store.blockid import PIECE_BYTES, legacy_block_id, new_block_id, piece_digests, whole_block_id
from edgestore.store.blocks import block_file, file_intact


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None,
          data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""


def call(url: str, method: str = "GET", headers: dict[str, str] | None = None,
         data: bytes | None = None) -> int:
    return fetch(url, method, headers, data)[0]


@pytest.fixture(scope="module")
def secret(cluster: Any) -> bytes:
    return Path(cluster.info["secret_file"]).read_text().strip().encode()


PATH = "/_internal/d1/record?kind=user&name=nobody"


def test_signed_request_is_served(cluster: Any, secret: bytes) -> None:
    assert call(cluster.url(0) + PATH, headers=signed_headers(secret, "GET", PATH, EMPTY_DIGEST)) == 404


def test_unsigned_request_is_refused(cluster: Any) -> None:
    assert call(cluster.url(0) + PATH) == 403


def test_wrong_secret_is_refused(cluster: Any) -> None:
    headers = signed_headers(b"not-the-cluster-secret", "GET", PATH, EMPTY_DIGEST)
    assert call(cluster.url(0) + PATH, headers=headers) == 403


def test_stale_request_is_refused(cluster: Any, secret: bytes) -> None:
    old = f"{time.time() - 3600:.3f}"
    headers = {"X-Edgestore-Time": old, "X-Edgestore-Body": EMPTY_DIGEST,
               "X-Edgestore-Signature": sign(secret, "GET", PATH, old, EMPTY_DIGEST)}
    assert call(cluster.url(0) + PATH, headers=headers) == 403


def test_signature_covers_the_path(cluster: Any, secret: bytes) -> None:
    headers = signed_headers(secret, "GET", PATH, EMPTY_DIGEST)
    assert call(cluster.url(0) + PATH.replace("nobody", "somebody"), headers=headers) == 403


def test_body_must_match_its_signed_digest(cluster: Any, secret: bytes) -> None:
    path = "/_internal/d1/records?part=0"
    body = b'[{"kind":"user","name":"mallory","ts":1,"node":"x","deleted":false,"value":{}}]'
    headers = signed_headers(secret, "POST", path, body_digest(b"[]"))
    assert call(cluster.url(0) + path, "POST", headers, body) == 400
    headers = signed_headers(secret, "POST", path, body_digest(body))
    assert call(cluster.url(0) + path, "POST", headers, body) == 200


def block_files(cluster: Any, block: str) -> list[Path]:
    blocks = Path(cluster.node(0)["data_dir"]) / "d1" / "blocks"
    return [block_file(blocks, block)] + list((blocks / "tmp").glob(block + ".*"))


@pytest.mark.parametrize("make_id", [new_block_id, whole_block_id, legacy_block_id], ids=["new", "whole", "legacy"])
def test_a_block_is_kept_and_served_only_while_its_bytes_match_its_id(cluster: Any, secret: bytes,
                                                                      make_id: Callable[[bytes], str]) -> None:
    data = os.urandom(600_000)   # several network reads: checked as it streams to disk
    block = make_id(data)
    path = f"/_internal/d1/block/{block}?part=0&ref=test%23x&ts=1"
    headers = signed_headers(secret, "PUT", path, block)
    assert call(cluster.url(0) + path, "PUT", headers, data[:-1] + bytes([data[-1] ^ 1])) == 400
    assert not any(p.exists() for p in block_files(cluster, block))   # neither kept nor left as a temp
    assert call(cluster.url(0) + path, "PUT", headers, data) == 201
    stored = block_files(cluster, block)
    raw = stored[0].read_bytes()
    assert raw.startswith(data) and file_intact(block, raw) and stored[1:] == []   # in place, no temp file left
    read = f"/_internal/d1/block/{block}"
    assert fetch(cluster.url(0) + read, headers=signed_headers(secret, "GET", read, EMPTY_DIGEST)) == (200, data)
    with open(stored[0], "r+b") as f:   # a rotten sector
        f.seek(12345)
        f.write(b"\0" if data[12345] else b"\1")
    assert call(cluster.url(0) + read, headers=signed_headers(secret, "GET", read, EMPTY_DIGEST)) == 404
    assert not stored[0].exists()
    assert (Path(cluster.node(0)["data_dir"]) / "d1" / "blocks" / "quarantine" / block).exists()


def test_a_pieced_block_is_served_by_range_with_its_digests(cluster: Any, secret: bytes) -> None:
    """What the coordinator asks a peer for: every piece digest (so it checks them against
    the id), then just the pieces that cover the bytes it wants."""
    data = os.urandom(3 * PIECE_BYTES + 100)
    block = new_block_id(data)
    path = f"/_internal/d1/block/{block}?part=0&ref=test%23y&ts=1"
    assert call(cluster.url(0) + path, "PUT", signed_headers(secret, "PUT", path, block), data) == 201
    digests = piece_digests(data, PIECE_BYTES)
    for first, last, start, end in ((5, 6, 0, PIECE_BYTES),
                                    (PIECE_BYTES, 2 * PIECE_BYTES + 1, PIECE_BYTES, 3 * PIECE_BYTES),
                                    (3 * PIECE_BYTES + 99, 3 * PIECE_BYTES + 99, 3 * PIECE_BYTES, len(data))):
        read = f"/_internal/d1/block/{block}?first={first}&last={last}"
        assert fetch(cluster.url(0) + read, headers=signed_headers(secret, "GET", read, EMPTY_DIGEST)) \
            == (200, digests + data[start:end])
    for query in ("first=9&last=2", "first=-1&last=2", "first=x&last=2"):
        read = f"/_internal/d1/block/{block}?{query}"
        assert call(cluster.url(0) + read, headers=signed_headers(secret, "GET", read, EMPTY_DIGEST)) == 400
    whole = whole_block_id(data)
    read = f"/_internal/d1/block/{whole}?first=0&last=1"
    assert call(cluster.url(0) + read, headers=signed_headers(secret, "GET", read, EMPTY_DIGEST)) == 400
