"""ListObjectsV2 and ListObjects (v1) with prefixes, delimiters, pages and awkward keys."""

from __future__ import annotations

from typing import Any

import pytest

AWKWARD_KEYS = [
    "plain", "with space", "plus+sign", "percent%20literal", "amp&lt;<tag>\"quote'", "ünïcödé/ß",
    "emoji-\U0001f600", "a/b/c", "a/b/d", "a/e", "trailing/", "dots/../x", "equals=and?q", "tab\tkey",
]


def keys_v2(s3: Any, bucket: str, **kwargs: Any) -> list[str]:
    out: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, **kwargs):
        out += [c["Key"] for c in page.get("Contents", [])]
    return out


def test_awkward_keys_round_trip_in_urls_and_listings(s3: Any, bucket: str) -> None:
    for key in AWKWARD_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    for key in AWKWARD_KEYS:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    expected = sorted(AWKWARD_KEYS, key=lambda k: k.encode())
    assert keys_v2(s3, bucket) == expected
    # boto3 asks for encoding-type=url and decodes; check the raw v1 listing too.
    v1 = s3.list_objects(Bucket=bucket)
    assert [c["Key"] for c in v1["Contents"]] == expected


def test_pagination_with_max_keys_and_start_after(s3: Any, bucket: str) -> None:
    keys = [f"k{i:03d}" for i in range(25)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    assert keys_v2(s3, bucket, PaginationConfig={"PageSize": 7}) == keys
    page = s3.list_objects_v2(Bucket=bucket, MaxKeys=10)
    assert page["IsTruncated"] and page["KeyCount"] == 10 and page["MaxKeys"] == 10
    nxt = s3.list_objects_v2(Bucket=bucket, MaxKeys=10, ContinuationToken=page["NextContinuationToken"])
    assert [c["Key"] for c in nxt["Contents"]] == keys[10:20]
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="k019")
    assert [c["Key"] for c in after["Contents"]] == keys[20:]
    assert not after["IsTruncated"]
    v1 = s3.list_objects(Bucket=bucket, MaxKeys=5, Marker="k002")
    assert [c["Key"] for c in v1["Contents"]] == keys[3:8] and v1["IsTruncated"]
    empty = s3.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert empty["KeyCount"] == 0 and "Contents" not in empty


def test_delimiter_and_prefix(s3: Any, bucket: str) -> None:
    for key in ["photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "photos/top.jpg",
                "docs/readme", "root.txt"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["docs/", "photos/"]
    assert [c["Key"] for c in top["Contents"]] == ["root.txt"]
    photos = s3.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix="photos/")
    assert [p["Prefix"] for p in photos["CommonPrefixes"]] == ["photos/2024/", "photos/2025/"]
    assert [c["Key"] for c in photos["Contents"]] == ["photos/top.jpg"]
    # Common prefixes count towards max-keys and pages resume after them.
    seen: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}):
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        seen += [c["Key"] for c in page.get("Contents", [])]
    assert seen == ["docs/", "photos/", "root.txt"]


def test_fetch_owner_names_the_account(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    page = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)
    owner = page["Contents"][0]["Owner"]
    assert owner["ID"] and owner["DisplayName"]
    assert "Owner" not in s3.list_objects_v2(Bucket=bucket)["Contents"][0]


def test_deleted_objects_leave_listings(s3: Any, bucket: str) -> None:
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"d{i}", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="d2")
    assert keys_v2(s3, bucket) == ["d0", "d1", "d3", "d4"]


def test_bad_listing_arguments(s3: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="!!!not-a-token")
    assert exc.value.response["Error"]["Code"] == "InvalidArgument"


def test_metadata_true_lists_each_objects_content_type_and_user_metadata(cluster: Any, s3: Any, bucket: str) -> None:
    """MinIO's listing extension, which the FUSE mount uses to stat a directory's files with
    one request: each Contents carries <UserMetadata>; without it, nothing more is listed."""
    from edgestore.fuse.s3client import S3Client

    s3.put_object(Bucket=bucket, Key="m/a.txt", Body=b"a", ContentType="text/plain",
                  Metadata={"mode": "33188", "mtime": "1577836800.250000000"})
    s3.put_object(Bucket=bucket, Key="m/plain", Body=b"")
    client = S3Client(cluster.endpoint, bucket, *cluster.credentials)
    try:
        page = client.list_page("m/", None, metadata=True)
        listed = {e.key: (e.content_type, e.meta) for e in page.entries}
        assert listed["m/a.txt"] == ("text/plain", {"mode": "33188", "mtime": "1577836800.250000000"})
        assert listed["m/plain"][1] == {} and listed["m/plain"][0]
        assert all(e.meta is None for e in client.list_page("m/", None).entries)
    finally:
        client.close()
