"""minio-py, MinIO's own S3 SDK, against a real cluster: buckets, single and multipart
uploads (streams of unknown length and files), stat, listings, presigned URLs, and a
put/get over HTTPS with a caller-supplied urllib3 pool that trusts the cluster's CA.

What minio-py sends that boto3 does not: over HTTP every body is SigV4-signed with its
SHA-256 (parts too); over HTTPS every request says UNSIGNED-PAYLOAD and every body carries
Content-MD5. Without a region it asks GET /BUCKET?location= once for each bucket it did not
create itself. ListObjectsV2 always goes with encoding-type=url. compose_object is
UploadPartCopy with x-amz-copy-source-range and x-amz-copy-source-if-match; remove_objects is
DeleteObjects (POST /BUCKET?delete=) with Content-MD5."""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

minio = pytest.importorskip("minio", reason="minio-py is not installed in the venv (pip install minio)")
urllib3 = pytest.importorskip("urllib3")

from minio import Minio  # noqa: E402
from minio.error import S3Error  # noqa: E402

MIB = 1024 * 1024
# minio-py's smallest part; it is also what it picks for any object under 50 GiB.
PART = 5 * MIB


def pool(ca_file: str | None = None) -> Any:
    """A urllib3 pool with bounded timeouts and few retries, so a hung server fails a test fast."""
    kwargs: dict[str, Any] = {}
    if ca_file is not None:
        kwargs = {"cert_reqs": "CERT_REQUIRED", "ca_certs": ca_file}
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=10, read=60),
                               retries=urllib3.Retry(total=2, backoff_factor=0.2), maxsize=10, **kwargs)


def host_port(url: str) -> str:
    return url.split("://", 1)[1].rstrip("/")


@pytest.fixture(scope="module")
def mc(cluster: Any) -> Iterator[Any]:
    """The client as a user would make it: no region (minio-py then asks for the bucket's location)."""
    http = pool()
    access_key, secret_key = cluster.credentials
    yield Minio(host_port(cluster.endpoint), access_key=access_key, secret_key=secret_key, secure=False,
                http_client=http)
    http.clear()


@pytest.fixture(scope="module")
def mc_https(cluster: Any) -> Iterator[Any]:
    http = pool(cluster.info["ca_file"])
    access_key, secret_key = cluster.credentials
    yield Minio(host_port(cluster.info["s3_https_endpoint"]), access_key=access_key, secret_key=secret_key,
                secure=True, http_client=http)
    http.clear()


def unique_bucket(label: str) -> str:
    name = f"minio-{os.getpid()}-{label}".lower()
    return "".join(c if c.isalnum() else "-" for c in name)[:63].strip("-")


@pytest.fixture(scope="module")
def scratch(mc: Any) -> str:
    name = unique_bucket("scratch")
    mc.make_bucket(name)
    return name


def read_all(mc: Any, bucket: str, key: str, **kwargs: Any) -> bytes:
    response = mc.get_object(bucket, key, **kwargs)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def multipart_etag(body: bytes, part_size: int) -> str:
    parts = [body[i:i + part_size] for i in range(0, len(body), part_size)]
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


# -- buckets ------------------------------------------------------------------------------


def test_make_exists_list_and_remove_bucket(mc: Any) -> None:
    name = unique_bucket("lifecycle")
    assert mc.bucket_exists(name) is False
    mc.make_bucket(name)
    assert mc.bucket_exists(name) is True
    listed = {b.name: b for b in mc.list_buckets()}
    assert name in listed and listed[name].creation_date is not None
    with pytest.raises(S3Error) as again:
        mc.make_bucket(name)
    assert again.value.code == "BucketAlreadyOwnedByYou"
    mc.put_object(name, "k", io.BytesIO(b"v"), 1)
    with pytest.raises(S3Error) as not_empty:
        mc.remove_bucket(name)
    assert not_empty.value.code == "BucketNotEmpty"
    mc.remove_object(name, "k")
    mc.remove_bucket(name)
    assert mc.bucket_exists(name) is False
    assert name not in {b.name for b in mc.list_buckets()}


def test_missing_bucket_and_key_errors(mc: Any, scratch: str) -> None:
    with pytest.raises(S3Error) as no_bucket:
        mc.stat_object(unique_bucket("no-such-bucket"), "k")
    assert no_bucket.value.code in ("NoSuchBucket", "NoSuchKey", "ResourceNotFound")
    with pytest.raises(S3Error) as no_key:
        read_all(mc, scratch, "no/such/key")
    assert no_key.value.code == "NoSuchKey"


# -- objects ------------------------------------------------------------------------------


def test_small_put_get_stat_with_metadata(mc: Any, scratch: str) -> None:
    body = b"hello from minio-py\n"
    result = mc.put_object(scratch, "docs/hello.txt", io.BytesIO(body), len(body),
                           content_type="text/plain; charset=utf-8",
                           metadata={"owner": "alice", "x-amz-meta-camera": "pi-cam-2"})
    assert result.etag == hashlib.md5(body).hexdigest()
    assert read_all(mc, scratch, "docs/hello.txt") == body
    assert read_all(mc, scratch, "docs/hello.txt", offset=6, length=4) == body[6:10]
    assert read_all(mc, scratch, "docs/hello.txt", offset=11) == body[11:]
    stat = mc.stat_object(scratch, "docs/hello.txt")
    assert stat.size == len(body)
    assert stat.etag == result.etag
    assert stat.content_type == "text/plain; charset=utf-8"
    assert stat.last_modified is not None
    assert stat.metadata["x-amz-meta-owner"] == "alice"
    assert stat.metadata["x-amz-meta-camera"] == "pi-cam-2"


def test_zero_byte_object(mc: Any, scratch: str) -> None:
    mc.put_object(scratch, "empty", io.BytesIO(b""), 0)
    assert read_all(mc, scratch, "empty") == b""
    assert mc.stat_object(scratch, "empty").size == 0


def test_stream_of_unknown_length_goes_up_as_multipart(mc: Any, scratch: str) -> None:
    body = os.urandom(20 * MIB + 3)
    result = mc.put_object(scratch, "stream/20mib.bin", io.BytesIO(body), -1, part_size=PART)
    # 4 parts of 5 MiB and a 3-byte fifth: a multipart ETag with the part count.
    assert result.etag == multipart_etag(body, PART)
    assert result.etag.endswith("-5")
    assert mc.stat_object(scratch, "stream/20mib.bin").size == len(body)
    assert read_all(mc, scratch, "stream/20mib.bin") == body
    assert read_all(mc, scratch, "stream/20mib.bin", offset=PART - 10, length=20) == body[PART - 10:PART + 10]


def test_fput_and_fget_of_a_30_mib_file(mc: Any, scratch: str, tmp_path: Path) -> None:
    body = os.urandom(30 * MIB + 7)
    src = tmp_path / "thirty.bin"
    src.write_bytes(body)
    result = mc.fput_object(scratch, "files/thirty.bin", str(src), content_type="application/x-thirty")
    assert result.etag == multipart_etag(body, PART)
    stat = mc.stat_object(scratch, "files/thirty.bin")
    assert (stat.size, stat.content_type) == (len(body), "application/x-thirty")
    dst = tmp_path / "down" / "thirty.bin"
    got = mc.fget_object(scratch, "files/thirty.bin", str(dst))
    assert got.size == len(body)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(body).digest()
    # fget_object downloads to "<file>.<etag>.part.minio" first, then renames: nothing left over.
    assert sorted(p.name for p in dst.parent.iterdir()) == ["thirty.bin"]


def test_remove_object(mc: Any, scratch: str) -> None:
    mc.put_object(scratch, "gone/soon", io.BytesIO(b"x"), 1)
    mc.remove_object(scratch, "gone/soon")
    with pytest.raises(S3Error) as missing:
        mc.stat_object(scratch, "gone/soon")
    assert missing.value.code == "NoSuchKey"
    # S3 answers 204 to deleting a key that is not there; minio-py raises nothing.
    mc.remove_object(scratch, "gone/never-was")


# -- listings -----------------------------------------------------------------------------

TREE = ["top.txt", "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2024/sub/c.jpg", "photos/2025/d.jpg",
        "photos/readme", "physics.txt", "zz/e", "with space/ünï (1)+&=.txt"]


def names(listing: Any) -> list[str]:
    return sorted(o.object_name for o in listing)


@pytest.fixture(scope="module")
def populated(mc: Any) -> str:
    name = unique_bucket("populated")
    mc.make_bucket(name)
    for i, key in enumerate(TREE):
        mc.put_object(name, key, io.BytesIO(b"x" * (i + 1)), i + 1)
    return name


def test_list_objects_recursive_and_not(mc: Any, populated: str) -> None:
    flat = list(mc.list_objects(populated, recursive=True))
    assert [o.object_name for o in flat] == sorted(TREE)
    assert {o.object_name: o.size for o in flat} == {k: i + 1 for i, k in enumerate(TREE)}
    assert all(not o.is_dir and o.etag and o.last_modified for o in flat)

    # minio-py yields a page's objects first, then its common prefixes.
    top = list(mc.list_objects(populated))
    assert sorted((o.object_name, o.is_dir) for o in top) == [
        ("photos/", True), ("physics.txt", False), ("top.txt", False), ("with space/", True), ("zz/", True)]


def test_list_objects_with_prefix(mc: Any, populated: str) -> None:
    assert names(mc.list_objects(populated, prefix="photos/")) == ["photos/2024/", "photos/2025/", "photos/readme"]
    assert [o.object_name for o in mc.list_objects(populated, prefix="photos/2024/", recursive=True)] == [
        "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2024/sub/c.jpg"]
    # Without a trailing slash the prefix matches partial names.
    assert names(mc.list_objects(populated, prefix="ph")) == ["photos/", "physics.txt"]
    # encoding-type=url comes back decoded.
    assert [o.object_name for o in mc.list_objects(populated, prefix="with space/")] == ["with space/ünï (1)+&=.txt"]
    assert list(mc.list_objects(populated, prefix="nothing")) == []
    assert [o.object_name for o in mc.list_objects(populated, recursive=True, start_after="photos/readme")] == [
        "physics.txt", "top.txt", "with space/ünï (1)+&=.txt", "zz/e"]


def test_list_objects_v1(mc: Any, populated: str) -> None:
    assert [o.object_name for o in mc.list_objects(populated, recursive=True, use_api_v1=True)] == sorted(TREE)
    assert names(mc.list_objects(populated, prefix="photos/", use_api_v1=True)) == [
        "photos/2024/", "photos/2025/", "photos/readme"]


# -- presigned URLs -----------------------------------------------------------------------


def test_presigned_get_with_urllib(mc: Any, scratch: str) -> None:
    body = os.urandom(50_000)
    mc.put_object(scratch, "shared/photo.jpg", io.BytesIO(body), len(body), content_type="image/jpeg")
    url = mc.presigned_get_object(scratch, "shared/photo.jpg", expires=timedelta(minutes=5))
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.read() == body
    # response-* overrides are part of what is signed.
    url = mc.presigned_get_object(scratch, "shared/photo.jpg", expires=timedelta(minutes=5),
                                  response_headers={"response-content-type": "application/x-download"})
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.headers["Content-Type"] == "application/x-download"
        assert response.read() == body
    # Tampering with the key breaks the signature.
    with pytest.raises(urllib.error.HTTPError) as tampered:
        urllib.request.urlopen(url.replace("/shared/photo.jpg?", "/shared/other.jpg?"), timeout=30)
    assert tampered.value.code == 403


def test_presigned_put_with_urllib(mc: Any, scratch: str) -> None:
    url = mc.presigned_put_object(scratch, "shared/upload.bin", expires=timedelta(minutes=5))
    body = os.urandom(30_000)
    request = urllib.request.Request(url, data=body, method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    assert read_all(mc, scratch, "shared/upload.bin") == body


# -- HTTPS --------------------------------------------------------------------------------


def test_put_and_get_over_https_with_a_custom_http_client(mc_https: Any, mc: Any, scratch: str) -> None:
    small = os.urandom(100_000)
    result = mc_https.put_object(scratch, "tls/small.bin", io.BytesIO(small), len(small))
    assert result.etag == hashlib.md5(small).hexdigest()
    assert read_all(mc_https, scratch, "tls/small.bin") == small
    big = os.urandom(12 * MIB + 1)
    result = mc_https.put_object(scratch, "tls/big.bin", io.BytesIO(big), len(big))
    assert result.etag == multipart_etag(big, PART)
    assert read_all(mc_https, scratch, "tls/big.bin") == big
    # The same objects through the plain port.
    assert read_all(mc, scratch, "tls/small.bin") == small
    assert mc.stat_object(scratch, "tls/big.bin").size == len(big)
    assert scratch in {b.name for b in mc_https.list_buckets()}


# -- server-side copy and batch delete ----------------------------------------------------


def test_copy_object(mc: Any, scratch: str) -> None:
    from minio.commonconfig import REPLACE, CopySource

    body = os.urandom(6 * MIB + 5)
    mc.put_object(scratch, "copy/src", io.BytesIO(body), len(body), content_type="image/png",
                  metadata={"owner": "alice", "camera": "pi-cam-2"})
    mc.copy_object(scratch, "copy/dst", CopySource(scratch, "copy/src"))
    assert read_all(mc, scratch, "copy/dst") == body
    stat = mc.stat_object(scratch, "copy/dst")
    assert (stat.content_type, stat.metadata["x-amz-meta-owner"]) == ("image/png", "alice")
    assert stat.metadata["x-amz-meta-camera"] == "pi-cam-2"
    # Metadata replaced on a copy onto itself: what tools do to change metadata in place.
    mc.copy_object(scratch, "copy/src", CopySource(scratch, "copy/src"), metadata={"owner": "bob"},
                   metadata_directive=REPLACE)
    stat = mc.stat_object(scratch, "copy/src")
    assert stat.metadata["x-amz-meta-owner"] == "bob" and "x-amz-meta-camera" not in stat.metadata
    assert read_all(mc, scratch, "copy/src") == body


def test_compose_object_uses_upload_part_copy(mc: Any, scratch: str) -> None:
    from minio.commonconfig import ComposeSource

    first, second = os.urandom(5 * MIB), os.urandom(1234)
    mc.put_object(scratch, "compose/a", io.BytesIO(first), len(first))
    mc.put_object(scratch, "compose/b", io.BytesIO(second), len(second))
    mc.compose_object(scratch, "compose/ab", [ComposeSource(scratch, "compose/a"),
                                              ComposeSource(scratch, "compose/b", offset=10, length=1000)])
    assert read_all(mc, scratch, "compose/ab") == first + second[10:1010]


def test_remove_objects_in_one_request(mc: Any, scratch: str) -> None:
    from minio.deleteobjects import DeleteObject

    keys = [f"batch/{i}" for i in range(5)]
    for key in keys:
        mc.put_object(scratch, key, io.BytesIO(b"b"), 1)
    # remove_objects is lazy and yields one DeleteError per key it could not delete.
    errors = list(mc.remove_objects(scratch, [DeleteObject(k) for k in [*keys, "batch/never-was"]]))
    assert errors == []
    assert list(mc.list_objects(scratch, prefix="batch/")) == []
