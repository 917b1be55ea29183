"""S3 buckets and objects through boto3 with its default configuration, on a real cluster."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def status(exc: ClientError) -> int:
    return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


def test_bucket_lifecycle(s3: Any) -> None:
    name = f"life-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    s3.head_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert error_code(exc.value) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert error_code(exc.value) == "BucketNotEmpty" and status(exc.value) == 409
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert status(exc.value) == 404
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize("name", ["ab", "UPPER", "has_underscore", "-dash", "a" * 64, "1.2.3.4", "a..b"])
def test_invalid_bucket_names_are_refused(s3: Any, name: str) -> None:
    # botocore checks some names itself; what reaches the server must be refused with S3's code.
    from botocore.exceptions import ParamValidationError
    try:
        s3.create_bucket(Bucket=name)
    except ParamValidationError:
        return
    except ClientError as exc:
        assert error_code(exc) == "InvalidBucketName" and status(exc) == 400
        return
    pytest.fail(f"bucket {name!r} was created")


def test_get_bucket_location(s3: Any, bucket: str) -> None:
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] in (None, "")


# Around the inline limit (16 KiB) and the block size (4 MiB): a body is filled into blocks
# in place, and each edge is a place where a byte could be dropped or doubled.
@pytest.mark.parametrize("size", [0, 1, 4096, 16 * 1024, 16 * 1024 + 1, 1024 * 1024, 3 * 1024 * 1024 + 17,
                                  4 * 1024 * 1024 - 1, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1,
                                  8 * 1024 * 1024 + 16 * 1024 + 3])
def test_put_get_round_trip_with_md5_etag(s3: Any, bucket: str, size: int) -> None:
    body = os.urandom(size)
    put = s3.put_object(Bucket=bucket, Key=f"obj-{size}", Body=body)
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key=f"obj-{size}")
    assert got["Body"].read() == body
    assert got["ContentLength"] == size
    assert got["ETag"] == put["ETag"]


def test_metadata_and_standard_headers_round_trip(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="doc.html", Body=b"<p>hi</p>", ContentType="text/html; charset=utf-8",
                  Metadata={"owner": "alice", "Camera": "pi-cam 2"}, CacheControl="max-age=60",
                  ContentDisposition='attachment; filename="doc.html"', ContentLanguage="fr")
    head = s3.head_object(Bucket=bucket, Key="doc.html")
    assert head["ContentType"] == "text/html; charset=utf-8"
    assert head["Metadata"] == {"owner": "alice", "camera": "pi-cam 2"}
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == 'attachment; filename="doc.html"'
    assert head["ContentLanguage"] == "fr"
    assert head["ContentLength"] == 9
    assert "LastModified" in head
    default = s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    assert default["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.head_object(Bucket=bucket, Key="plain")["ContentType"] == "binary/octet-stream"


def test_missing_objects_and_buckets(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="nope")
    assert error_code(exc.value) == "NoSuchKey" and status(exc.value) == 404
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="nope")
    assert status(exc.value) == 404
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="no-such-bucket-here", Key="k", Body=b"x")
    assert error_code(exc.value) == "NoSuchBucket"
    # Deleting what is not there succeeds, as in S3.
    assert s3.delete_object(Bucket=bucket, Key="nope")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_overwrite_and_delete(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"one")
    s3.put_object(Bucket=bucket, Key="k", Body=b"two" * 10000)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two" * 10000
    s3.delete_object(Bucket=bucket, Key="k")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k")


@pytest.mark.parametrize("rng,expected", [
    ("bytes=0-9", slice(0, 10)), ("bytes=100-", slice(100, None)), ("bytes=-50", slice(-50, None)),
    ("bytes=1048570-1048600", slice(1048570, 1048601)), ("bytes=5-999999999", slice(5, None)),
])
def test_ranged_get(s3: Any, bucket: str, rng: str, expected: slice) -> None:
    body = os.urandom(2 * 1024 * 1024 + 5)
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    got = s3.get_object(Bucket=bucket, Key="r", Range=rng)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == body[expected]
    assert got["ContentRange"].endswith(f"/{len(body)}")


def test_unsatisfiable_range(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="small", Body=b"abc")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="small", Range="bytes=10-20")
    assert error_code(exc.value) == "InvalidRange" and status(exc.value) == 416


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256", "SHA1", "CRC32C"])
def test_checksums_are_verified_stored_and_returned(s3: Any, bucket: str, algorithm: str) -> None:
    body = os.urandom(100_000)
    try:
        put = s3.put_object(Bucket=bucket, Key=f"c-{algorithm}", Body=body, ChecksumAlgorithm=algorithm)
    except Exception as exc:  # botocore without awscrt cannot compute CRC32C itself
        if "awscrt" in str(exc).lower() or "crt" in type(exc).__name__.lower():
            pytest.skip("botocore needs awscrt for CRC32C")
        raise
    field = f"Checksum{algorithm}"
    head = s3.head_object(Bucket=bucket, Key=f"c-{algorithm}", ChecksumMode="ENABLED")
    assert head[field] == put[field]
    got = s3.get_object(Bucket=bucket, Key=f"c-{algorithm}", ChecksumMode="ENABLED")
    assert got["Body"].read() == body  # botocore validates the returned checksum itself


def test_default_client_checksum_is_stored(s3: Any, bucket: str) -> None:
    # boto3 >= 1.36 sends a CRC32 on every PutObject by default.
    put = s3.put_object(Bucket=bucket, Key="default-crc", Body=b"hello")
    assert put.get("ChecksumCRC32")
    head = s3.head_object(Bucket=bucket, Key="default-crc", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == put["ChecksumCRC32"]


def test_wrong_content_md5_is_refused_and_nothing_stored(s3: Any, bucket: str) -> None:
    import base64
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"payload", ContentMD5=bad)
    assert error_code(exc.value) == "BadDigest" and status(exc.value) == 400
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="md5")


def test_content_encoding_gzip_is_stored_as_sent(s3: Any, bucket: str) -> None:
    """A gzip'd web asset is an object whose bytes are the gzip stream: never decompressed."""
    import gzip
    data = gzip.compress(os.urandom(1000) * 20)
    s3.put_object(Bucket=bucket, Key="app.js.gz", Body=data, ContentEncoding="gzip", ContentType="text/javascript")
    got = s3.get_object(Bucket=bucket, Key="app.js.gz")
    assert got["ContentEncoding"] == "gzip"
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
