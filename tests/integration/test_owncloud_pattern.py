"""The request pattern of ownCloud's S3 primary-storage app and Nextcloud's S3 object store,
replayed with boto3 (default configuration: checksums on): health check, bucket
auto-creation, versioning, single PUTs up to 100 MiB, parallel multipart above, ListParts,
abort on failure, ranged and presigned GETs, server-side copy for renames, version listing."""

from __future__ import annotations

import hashlib
import http.client
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from conftest import make_s3

MIB = 1024 * 1024


def ensure_bucket(s3: Any, name: str) -> None:
    """What both apps do at start-up with autocreate on."""
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] != 404:
            raise
        s3.create_bucket(Bucket=name)


def test_primary_storage_pattern(cluster: Any, tmp_path: Path) -> None:
    s3 = make_s3(cluster.endpoint, *cluster.credentials)
    s3.list_buckets()  # the health check
    ensure_bucket(s3, "owncloud")
    ensure_bucket(s3, "owncloud")  # a second start finds it
    s3.put_bucket_versioning(Bucket="owncloud", VersioningConfiguration={"Status": "Enabled"})

    # Files are stored under opaque URNs; small ones and up to 100 MiB in one PUT.
    small = os.urandom(30_000)
    v1 = s3.put_object(Bucket="owncloud", Key="urn:oid:101", Body=small)["VersionId"]
    big = os.urandom(100 * MIB)
    s3.put_object(Bucket="owncloud", Key="urn:oid:102", Body=big)
    assert s3.head_object(Bucket="owncloud", Key="urn:oid:102")["ContentLength"] == 100 * MIB

    # Above 100 MiB: multipart, several large parts in parallel.
    huge_path = tmp_path / "huge"
    huge_path.write_bytes(os.urandom(110 * MIB))
    config = TransferConfig(multipart_threshold=100 * MIB, multipart_chunksize=32 * MIB, max_concurrency=4)
    s3.upload_file(str(huge_path), "owncloud", "urn:oid:103", Config=config)
    assert s3.head_object(Bucket="owncloud", Key="urn:oid:103")["ETag"].endswith('-4"')

    # A multipart upload that fails half-way is aborted, leaving nothing behind.
    upload = s3.create_multipart_upload(Bucket="owncloud", Key="urn:oid:104")["UploadId"]
    s3.upload_part(Bucket="owncloud", Key="urn:oid:104", UploadId=upload, PartNumber=1, Body=os.urandom(5 * MIB))
    assert [p["PartNumber"] for p in s3.list_parts(Bucket="owncloud", Key="urn:oid:104",
                                                   UploadId=upload)["Parts"]] == [1]
    s3.abort_multipart_upload(Bucket="owncloud", Key="urn:oid:104", UploadId=upload)
    assert not s3.list_multipart_uploads(Bucket="owncloud").get("Uploads")

    # Downloads: ranged reads (streaming, seeking in videos) and presigned links.
    ranged = s3.get_object(Bucket="owncloud", Key="urn:oid:102", Range="bytes=1000-1999")["Body"].read()
    assert ranged == big[1000:2000]
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "owncloud", "Key": "urn:oid:101"}, ExpiresIn=60)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", f"{parts.path}?{parts.query}")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == small
    conn.close()

    # A new version of a file, then its versions listed and an old one restored by copy.
    s3.put_object(Bucket="owncloud", Key="urn:oid:101", Body=b"edited")
    listed = s3.list_object_versions(Bucket="owncloud", Prefix="urn:oid:101")["Versions"]
    assert [v["IsLatest"] for v in listed] == [True, False] and listed[1]["VersionId"] == v1
    s3.copy_object(Bucket="owncloud", Key="urn:oid:101",
                   CopySource={"Bucket": "owncloud", "Key": "urn:oid:101", "VersionId": v1})
    assert s3.get_object(Bucket="owncloud", Key="urn:oid:101")["Body"].read() == small

    # A server-side copy (Nextcloud's copy, and moves across storages), then delete.
    s3.copy_object(Bucket="owncloud", Key="urn:oid:105", CopySource={"Bucket": "owncloud", "Key": "urn:oid:102"})
    s3.delete_object(Bucket="owncloud", Key="urn:oid:102")
    got = s3.get_object(Bucket="owncloud", Key="urn:oid:105")["Body"]
    digest = hashlib.md5()
    for chunk in got.iter_chunks(MIB):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.md5(big).hexdigest()
