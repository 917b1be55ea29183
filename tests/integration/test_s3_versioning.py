"""Bucket versioning as ownCloud's file-versions feature uses it: versions kept on overwrite,
delete markers, reading and deleting given versions, listing versions, suspension."""

from __future__ import annotations

import os
from typing import Any

import pytest
from botocore.exceptions import ClientError


def code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def versions(s3: Any, bucket: str, **kw: Any) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is delete marker) in listing order, over every page."""
    out: list[tuple[str, str, bool, bool]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, **kw):
        entries = [(v["Key"], v["VersionId"], v["IsLatest"], False, v["LastModified"])
                   for v in page.get("Versions", [])]
        entries += [(d["Key"], d["VersionId"], d["IsLatest"], True, d["LastModified"])
                    for d in page.get("DeleteMarkers", [])]
        # boto3 splits the two kinds; S3 orders each key's entries newest first.
        entries.sort(key=lambda e: (e[0].encode(), -e[4].timestamp(), e[1]))
        out += [e[:4] for e in entries]
    return out


def test_status_starts_unset_then_enabled_then_suspended(s3: Any, bucket: str) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Sometimes"})  # type: ignore
    assert code(exc.value) in ("IllegalVersioningConfigurationException", "MalformedXML")


def test_overwrites_keep_versions_and_each_reads_back(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="doc", Body=b"before versioning")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    bodies = [b"v1", os.urandom(100_000), b"v3"]
    ids = [s3.put_object(Bucket=bucket, Key="doc", Body=b)["VersionId"] for b in bodies]
    assert len(set(ids)) == 3 and "null" not in ids
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"v3"
    for version_id, body in zip(ids, bodies, strict=True):
        got = s3.get_object(Bucket=bucket, Key="doc", VersionId=version_id)
        assert got["Body"].read() == body and got["VersionId"] == version_id
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId="null")["Body"].read() == b"before versioning"
    listed = versions(s3, bucket)
    assert [v[1] for v in listed] == list(reversed(ids)) + ["null"]
    assert [v[2] for v in listed] == [True, False, False, False]
    assert s3.head_object(Bucket=bucket, Key="doc", VersionId=ids[0])["ContentLength"] == 2


def test_delete_marker_hides_then_removing_it_restores(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="f", Body=b"content")["VersionId"]
    deleted = s3.delete_object(Bucket=bucket, Key="f")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="f")
    assert code(exc.value) == "NoSuchKey"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert versions(s3, bucket) == [("f", marker, True, True), ("f", first, False, False)]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="f", VersionId=marker)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 405
    removed = s3.delete_object(Bucket=bucket, Key="f", VersionId=marker)
    assert removed["DeleteMarker"] is True and removed["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="f")["Body"].read() == b"content"


def test_deleting_the_latest_version_makes_the_previous_current(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=bucket, Key="k", Body=b"old", ContentType="text/old")["VersionId"]
    new = s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(2_000_000))["VersionId"]
    s3.delete_object(Bucket=bucket, Key="k", VersionId=new)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"old" and got["ContentType"] == "text/old" and got["VersionId"] == old
    s3.delete_object(Bucket=bucket, Key="k", VersionId=old)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k")
    assert versions(s3, bucket) == []
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId=new)
    assert code(exc.value) == "NoSuchVersion"


def test_suspended_writes_replace_the_null_version(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    kept = s3.put_object(Bucket=bucket, Key="s", Body=b"kept")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=bucket, Key="s", Body=b"null one").get("VersionId", "null") == "null"
    s3.put_object(Bucket=bucket, Key="s", Body=b"null two")
    listed = versions(s3, bucket)
    assert [(v[1], v[2]) for v in listed] == [("null", True), (kept, False)]
    assert s3.get_object(Bucket=bucket, Key="s", VersionId="null")["Body"].read() == b"null two"
    assert s3.get_object(Bucket=bucket, Key="s", VersionId=kept)["Body"].read() == b"kept"


def test_listing_versions_pages_and_prefixes(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in ("a/1", "a/2", "b"):
        for _ in range(3):
            s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(10))
    s3.delete_object(Bucket=bucket, Key="b")
    everything = versions(s3, bucket)
    assert len(everything) == 10
    assert versions(s3, bucket, PaginationConfig={"PageSize": 2}) == everything
    assert [v for v in everything if v[0].startswith("a/")] == versions(s3, bucket, Prefix="a/")
    top = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/"]


def test_versioned_bucket_is_not_empty_until_every_version_is_gone(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v = s3.put_object(Bucket=bucket, Key="x", Body=b"x")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="x")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert code(exc.value) == "BucketNotEmpty"
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "x", "VersionId": v},
                                                                  {"Key": "x", "VersionId": marker}]})
    assert sorted(d["VersionId"] for d in result["Deleted"]) == sorted([v, marker])
    s3.delete_bucket(Bucket=bucket)


def test_copy_from_a_version_and_multipart_into_a_versioned_bucket(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="src", Body=b"first")["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"second")
    copied = s3.copy_object(Bucket=bucket, Key="restored",
                            CopySource={"Bucket": bucket, "Key": "src", "VersionId": first})
    assert copied["CopySourceVersionId"] == first and copied["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="restored")["Body"].read() == b"first"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="src")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="src", UploadId=upload, PartNumber=1, Body=b"third")["ETag"]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="src", UploadId=upload,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert done["VersionId"]
    assert len([v for v in versions(s3, bucket) if v[0] == "src"]) == 3
