"""aws-chunked uploads through a real node: chunk-signed, unsigned with a trailing checksum
(what boto3 >= 1.36 and the aws cli send over HTTPS), and signed with a signed trailer."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import Any

import pytest
from s3raw import aws_chunked_signed, aws_chunked_unsigned_by_botocore, send, sign_claiming


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


# Chunk signatures have a fixed width, so a body framed with a dummy seed signature has the
# length the real one will have: Content-Length must be signed before the chunks are.
DUMMY_SIGNED = {"Authorization": "Credential=a/20250101/us-east-1/s3/aws4_request, Signature=00",
                "x-amz-date": "20250101T000000Z"}


def put_chunked(cluster: Any, bucket: str, key: str, body: bytes, mode: str, encoded: bytes,
                extra: dict[str, str] | None = None) -> Any:
    access_key, secret_key = cluster.credentials
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(body)),
               "Content-Length": str(len(encoded)), **(extra or {})}
    signed = sign_claiming(cluster.endpoint, access_key, secret_key, "PUT", f"/{bucket}/{key}", mode,
                           headers)
    return signed, secret_key


@pytest.mark.parametrize("size", [0, 100, 70_000, 2 * 1024 * 1024 + 3])
def test_chunk_signed_upload(cluster: Any, s3: Any, bucket: str, size: int) -> None:
    body = os.urandom(size)
    probe = aws_chunked_signed(body, 65536, DUMMY_SIGNED, "x")
    headers, secret = put_chunked(cluster, bucket, "signed", body, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", probe)
    encoded = aws_chunked_signed(body, 65536, headers, secret)
    resp = send(cluster.endpoint, "PUT", f"/{bucket}/signed", headers, encoded)
    assert resp.status == 200, resp.body
    assert resp.headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="signed")
    assert got["Body"].read() == body
    assert "ContentEncoding" not in got  # aws-chunked describes the transfer, not the object


def test_chunk_signed_upload_with_a_bad_chunk_signature_stores_nothing(cluster: Any, s3: Any, bucket: str) -> None:
    body = os.urandom(100_000)
    probe = aws_chunked_signed(body, 65536, DUMMY_SIGNED, "x")
    headers, secret = put_chunked(cluster, bucket, "bad", body, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", probe)
    encoded = bytearray(aws_chunked_signed(body, 65536, headers, secret))
    encoded[200] ^= 1  # flip one payload bit in the first chunk
    resp = send(cluster.endpoint, "PUT", f"/{bucket}/bad", headers, bytes(encoded))
    assert resp.status == 403 and resp.code == "SignatureDoesNotMatch"
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("algorithm", ["crc32", "sha256", "sha1"])
def test_unsigned_payload_with_trailing_checksum_as_botocore_frames_it(
        cluster: Any, s3: Any, bucket: str, algorithm: str) -> None:
    body = os.urandom(300_000)
    encoded = aws_chunked_unsigned_by_botocore(body, algorithm)
    headers, _ = put_chunked(cluster, bucket, f"trailer-{algorithm}", body,
                             "STREAMING-UNSIGNED-PAYLOAD-TRAILER", encoded,
                             {"x-amz-trailer": f"x-amz-checksum-{algorithm}",
                              "x-amz-sdk-checksum-algorithm": algorithm.upper()})
    resp = send(cluster.endpoint, "PUT", f"/{bucket}/trailer-{algorithm}", headers, encoded)
    assert resp.status == 200, resp.body
    head = s3.head_object(Bucket=bucket, Key=f"trailer-{algorithm}", ChecksumMode="ENABLED")
    expected = {"crc32": crc32_b64(body),
                "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
                "sha1": base64.b64encode(hashlib.sha1(body).digest()).decode()}[algorithm]
    assert head[f"Checksum{algorithm.upper()}"] == expected
    assert s3.get_object(Bucket=bucket, Key=f"trailer-{algorithm}")["Body"].read() == body


def test_wrong_trailing_checksum_is_bad_digest_and_stores_nothing(cluster: Any, s3: Any, bucket: str) -> None:
    body = os.urandom(50_000)
    encoded = aws_chunked_unsigned_by_botocore(body, "crc32")
    good = crc32_b64(body).encode()
    encoded = encoded.replace(good, crc32_b64(b"something else").encode())
    headers, _ = put_chunked(cluster, bucket, "bad-trailer", body, "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                             encoded, {"x-amz-trailer": "x-amz-checksum-crc32"})
    resp = send(cluster.endpoint, "PUT", f"/{bucket}/bad-trailer", headers, encoded)
    assert resp.status == 400 and resp.code == "BadDigest"
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_signed_chunks_with_signed_trailer(cluster: Any, s3: Any, bucket: str) -> None:
    body = os.urandom(200_000)
    trailer = ("x-amz-checksum-crc32", crc32_b64(body))
    extra = {"x-amz-trailer": "x-amz-checksum-crc32"}
    probe = aws_chunked_signed(body, 65536, DUMMY_SIGNED, "x", trailer)
    headers, secret = put_chunked(cluster, bucket, "st", body, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                                  probe, extra)
    encoded = aws_chunked_signed(body, 65536, headers, secret, trailer)
    resp = send(cluster.endpoint, "PUT", f"/{bucket}/st", headers, encoded)
    assert resp.status == 200, resp.body
    head = s3.head_object(Bucket=bucket, Key="st", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == trailer[1]


def test_truncated_chunked_body_stores_nothing(cluster: Any, s3: Any, bucket: str) -> None:
    body = os.urandom(200_000)
    encoded = aws_chunked_unsigned_by_botocore(body, "crc32")
    headers, _ = put_chunked(cluster, bucket, "cut", body, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", encoded,
                             {"x-amz-trailer": "x-amz-checksum-crc32"})
    try:
        resp = send(cluster.endpoint, "PUT", f"/{bucket}/cut", headers, encoded[:100_000],
                    close_after_body=True)
        assert 400 <= resp.status < 500
    except ConnectionError:
        pass
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("size", [0, 5, 70_000, 3 * 1024 * 1024 + 1])
def test_boto3_defaults_over_https_send_trailing_checksums(s3_https: Any, bucket: str, size: int) -> None:
    """boto3 >= 1.36 over HTTPS: aws-chunked, unsigned payload, CRC32 trailer."""
    events: list[str] = []
    s3_https.meta.events.register("before-send.s3.PutObject",
                                  lambda request, **_: events.append(request.headers.get("x-amz-content-sha256")))
    body = os.urandom(size)
    put = s3_https.put_object(Bucket=bucket, Key="https", Body=body)
    assert events == [b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert put["ChecksumCRC32"] == crc32_b64(body)
    got = s3_https.get_object(Bucket=bucket, Key="https", ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert got["ChecksumCRC32"] == crc32_b64(body)
