"""Presigned URLs, as boto3 makes them (SigV4 query auth, and SigV2 for older setups),
used by a plain HTTP client that holds no credentials."""

from __future__ import annotations

import http.client
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import make_s3


def fetch(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    """A bare HTTP request: no credentials, and no Content-Type (SigV2 signs it)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, f"{parts.path}?{parts.query}", body=data)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture(params=["s3v4", "s3"], ids=["sigv4", "sigv2"])
def signer(request: pytest.FixtureRequest, cluster: Any) -> Any:
    return make_s3(cluster.endpoint, *cluster.credentials, signature_version=request.param)


def test_presigned_get_put_head_delete(signer: Any, s3: Any, bucket: str) -> None:
    put_url = signer.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    assert fetch(put_url, "PUT", b"via presigned put")[0] == 200
    get_url = signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    assert fetch(get_url) == (200, b"via presigned put")
    head_url = signer.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    assert fetch(head_url, "HEAD")[0] == 200
    delete_url = signer.generate_presigned_url("delete_object", Params={"Bucket": bucket, "Key": "p"},
                                               ExpiresIn=300)
    assert fetch(delete_url, "DELETE")[0] == 204
    assert fetch(get_url)[0] == 404


def test_expired_presigned_url_is_refused(signer: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="e", Body=b"x")
    url = signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "e"}, ExpiresIn=1)
    time.sleep(2.1)  # expiry is enforced against the server's clock; nothing to inject here
    status, body = fetch(url)
    assert status == 403 and b"<Code>AccessDenied</Code>" in body and b"expired" in body


def test_tampered_presigned_url_is_refused(signer: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    url = signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a"}, ExpiresIn=300)
    status, body = fetch(url.replace(f"/{bucket}/a?", f"/{bucket}/b?"))
    assert status == 403 and b"SignatureDoesNotMatch" in body
