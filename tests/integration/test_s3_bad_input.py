"""Malformed, unsigned and lying requests: each gets S3's error with a 4xx status, never a
500 or a hang, and nothing already stored is damaged."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from s3raw import send, sign, sign_claiming


@pytest.fixture
def raw(cluster: Any, s3: Any, bucket: str) -> Any:
    class Raw:
        endpoint = cluster.endpoint
        access_key, secret_key = cluster.credentials

        def signed(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                   payload_hash: str | None = None, **kw: Any):  # type: ignore[no-untyped-def]
            h = sign(self.endpoint, self.access_key, self.secret_key, method, path, headers,
                     payload_hash, body)
            h.setdefault("Content-Length", str(len(body)))
            return send(self.endpoint, method, path, h, body, **kw)
    r = Raw()
    r.bucket = bucket  # type: ignore[attr-defined]
    s3.put_object(Bucket=bucket, Key="precious", Body=b"keep me")
    return r


def assert_intact(s3: Any, bucket: str) -> None:
    assert s3.get_object(Bucket=bucket, Key="precious")["Body"].read() == b"keep me"


def test_unsigned_request_is_denied(raw: Any, s3: Any) -> None:
    resp = send(raw.endpoint, "PUT", f"/{raw.bucket}/precious", {"Content-Length": "3"}, b"bad")
    assert resp.status == 403 and resp.code == "AccessDenied"
    assert resp.headers["content-type"].startswith("application/xml")
    assert_intact(s3, raw.bucket)


def test_bad_signature(raw: Any, s3: Any) -> None:
    headers = sign(raw.endpoint, raw.access_key, "wrong-secret", "PUT", f"/{raw.bucket}/precious", body=b"bad")
    headers["Content-Length"] = "3"
    resp = send(raw.endpoint, "PUT", f"/{raw.bucket}/precious", headers, b"bad")
    assert resp.status == 403 and resp.code == "SignatureDoesNotMatch"
    assert_intact(s3, raw.bucket)


def test_unknown_access_key(raw: Any) -> None:
    headers = sign(raw.endpoint, "NOSUCHKEY12345", "x" * 40, "GET", f"/{raw.bucket}")
    resp = send(raw.endpoint, "GET", f"/{raw.bucket}", headers)
    assert resp.status == 403 and resp.code == "InvalidAccessKeyId"


@pytest.mark.parametrize("auth", [
    "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=", "garbage", "AWS4-HMAC-SHA256 Credential=a/b, Signature=x",
    "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=zz",
])
def test_malformed_authorization_header(raw: Any, auth: str) -> None:
    resp = send(raw.endpoint, "GET", f"/{raw.bucket}",
                {"Authorization": auth, "x-amz-date": "20250101T000000Z",
                 "x-amz-content-sha256": hashlib.sha256(b"").hexdigest()})
    assert 400 <= resp.status < 500 and resp.code


def test_payload_hash_mismatch_stores_nothing(raw: Any, s3: Any) -> None:
    resp = raw.signed("PUT", f"/{raw.bucket}/precious", b"evil body",
                      payload_hash=hashlib.sha256(b"other body").hexdigest())
    assert resp.status == 400 and resp.code == "XAmzContentSHA256Mismatch"
    assert_intact(s3, raw.bucket)


def test_key_too_long(raw: Any) -> None:
    resp = raw.signed("PUT", f"/{raw.bucket}/{'k' * 1025}", b"x")
    assert resp.status == 400 and resp.code == "KeyTooLongError"


def test_key_not_utf8(raw: Any) -> None:
    resp = raw.signed("PUT", f"/{raw.bucket}/bad%FF%FEkey", b"x")
    assert resp.status == 400 and resp.code == "InvalidURI"


def test_invalid_bucket_name_on_create(raw: Any) -> None:
    resp = raw.signed("PUT", "/Bad_Bucket")
    assert resp.status == 400 and resp.code == "InvalidBucketName"


def test_truncated_body_stores_nothing(raw: Any, s3: Any) -> None:
    body = os.urandom(200_000)
    headers = sign(raw.endpoint, raw.access_key, raw.secret_key, "PUT", f"/{raw.bucket}/precious",
                   payload_hash="UNSIGNED-PAYLOAD")
    headers["Content-Length"] = str(len(body))
    try:
        resp = send(raw.endpoint, "PUT", f"/{raw.bucket}/precious", headers, body[:50_000],
                    close_after_body=True)
        assert 400 <= resp.status < 500
    except ConnectionError:
        pass  # closing on a client that vanished mid-body is fine too
    assert_intact(s3, raw.bucket)


def test_content_length_shorter_than_body_with_signed_payload(raw: Any, s3: Any) -> None:
    body = b"0123456789" * 100
    headers = sign(raw.endpoint, raw.access_key, raw.secret_key, "PUT", f"/{raw.bucket}/precious",
                   body=body)
    headers["Content-Length"] = "500"
    # The first 500 bytes fail the signed payload hash; the rest is not a valid request.
    # The client hears 400 (or the connection closes) and the stored object is untouched.
    try:
        resp = send(raw.endpoint, "PUT", f"/{raw.bucket}/precious", headers, body)
        assert resp.status == 400
        assert resp.code in ("XAmzContentSHA256Mismatch", "")
    except ConnectionError:
        pass
    assert_intact(s3, raw.bucket)


def test_put_without_content_length(raw: Any, s3: Any) -> None:
    headers = sign(raw.endpoint, raw.access_key, raw.secret_key, "PUT", f"/{raw.bucket}/precious",
                   payload_hash="UNSIGNED-PAYLOAD")
    resp = send(raw.endpoint, "PUT", f"/{raw.bucket}/precious", headers)
    assert resp.status == 411 and resp.code == "MissingContentLength"
    assert_intact(s3, raw.bucket)


def test_garbage_request_line(raw: Any) -> None:
    import socket
    from urllib.parse import urlsplit
    parts = urlsplit(raw.endpoint)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        reply = sock.recv(1024)
    assert reply[:9] in (b"HTTP/1.1 ", b"HTTP/1.0 ") and reply[9:10] == b"4" or reply == b""


def test_unsupported_subresource_is_not_implemented(raw: Any) -> None:
    resp = raw.signed("GET", f"/{raw.bucket}?analytics")
    assert resp.status == 501 and resp.code == "NotImplemented"
    resp = raw.signed("PUT", f"/{raw.bucket}?website")
    assert resp.status == 501 and resp.code == "NotImplemented"


def test_clock_skew_is_refused(raw: Any) -> None:
    old = datetime.now(UTC) - timedelta(minutes=20)
    headers = sign_claiming(raw.endpoint, raw.access_key, raw.secret_key, "GET", f"/{raw.bucket}",
                            hashlib.sha256(b"").hexdigest(), now=old)
    resp = send(raw.endpoint, "GET", f"/{raw.bucket}", headers)
    assert resp.status == 403 and resp.code == "RequestTimeTooSkewed"
