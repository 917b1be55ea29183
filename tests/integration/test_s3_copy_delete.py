"""CopyObject (metadata directives, copy-source conditions, no data copied), UploadPartCopy
with ranges, DeleteObjects, and conditional writes (If-None-Match: *, If-Match)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import make_s3

from edgestore.config import NodeConfig

MIB = 1024 * 1024


def code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def block_writes_for(cluster: Any, object_name: str) -> int:
    """How many block writes named this object as their user, over every device: each block
    write records (block, object) in the device's database, so a copy that moved data
    would show up here even though identical blocks land in the same files."""
    total = 0
    for node in cluster.info["nodes"]:
        for db in Path(node["data_dir"]).glob("*/meta.db"):
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                total += conn.execute("SELECT COUNT(*) FROM block_refs WHERE ref LIKE ?",
                                      (object_name + "#%",)).fetchone()[0]
    return total


@pytest.mark.parametrize("size", [10, 3 * MIB + 5])
def test_copy_keeps_data_and_metadata(s3: Any, bucket: str, size: int) -> None:
    body = os.urandom(size)
    s3.put_object(Bucket=bucket, Key="src", Body=body, ContentType="image/jpeg", Metadata={"a": "1"})
    s3.create_bucket(Bucket=f"{bucket}-dst")
    result = s3.copy_object(Bucket=f"{bucket}-dst", Key="copy", CopySource={"Bucket": bucket, "Key": "src"})
    assert result["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=f"{bucket}-dst", Key="copy")
    assert got["Body"].read() == body
    assert got["ContentType"] == "image/jpeg" and got["Metadata"] == {"a": "1"}
    replaced = s3.copy_object(Bucket=bucket, Key="src2", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                              ContentType="text/plain", Metadata={"b": "2"})
    assert replaced["CopyObjectResult"]["ETag"] == result["CopyObjectResult"]["ETag"]
    head = s3.head_object(Bucket=bucket, Key="src2")
    assert head["ContentType"] == "text/plain" and head["Metadata"] == {"b": "2"}


def test_copy_of_a_large_object_writes_no_blocks(cluster: Any, s3: Any, bucket: str) -> None:
    blocks = 4
    body = os.urandom(blocks * NodeConfig.block_size_bytes)
    s3.put_object(Bucket=bucket, Key="big", Body=body)
    account = cluster.info["account"]
    assert block_writes_for(cluster, f"{account}/{bucket}/big") >= blocks * 2  # each block on a quorum
    s3.copy_object(Bucket=bucket, Key="big-copy", CopySource={"Bucket": bucket, "Key": "big"})
    s3.delete_object(Bucket=bucket, Key="big")
    assert block_writes_for(cluster, f"{account}/{bucket}/big-copy") == 0
    assert s3.get_object(Bucket=bucket, Key="big-copy")["Body"].read() == body


def test_copy_to_itself_needs_replace(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="self", Body=b"x", Metadata={"v": "1"})
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"})
    assert code(exc.value) == "InvalidRequest"
    s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"},
                   MetadataDirective="REPLACE", Metadata={"v": "2"})
    assert s3.head_object(Bucket=bucket, Key="self")["Metadata"] == {"v": "2"}


def test_copy_source_conditions_and_errors(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"cond")["ETag"]
    s3.copy_object(Bucket=bucket, Key="ok", CopySource={"Bucket": bucket, "Key": "c"}, CopySourceIfMatch=etag)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="no", CopySource={"Bucket": bucket, "Key": "c"},
                       CopySourceIfMatch='"0123"')
    assert code(exc.value) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="no", CopySource={"Bucket": bucket, "Key": "c"},
                       CopySourceIfNoneMatch=etag)
    assert code(exc.value) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="no", CopySource={"Bucket": bucket, "Key": "missing"})
    assert code(exc.value) == "NoSuchKey"


def test_copy_from_another_accounts_bucket_is_denied(cluster: Any, s3: Any, bucket: str) -> None:
    import json
    import subprocess
    import sys
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    out = subprocess.run([sys.executable, "-m", "edgestore", "user", "create", "other", "eve", "--json",
                          "--cluster", str(cluster.data / "cluster.json")], capture_output=True, timeout=60,
                         check=True)
    eve = json.loads(out.stdout)
    other = make_s3(cluster.endpoint, eve["access_key"], eve["secret_key"])
    other.create_bucket(Bucket=f"{bucket}-eve")
    with pytest.raises(ClientError) as exc:
        other.copy_object(Bucket=f"{bucket}-eve", Key="stolen", CopySource={"Bucket": bucket, "Key": "private"})
    assert code(exc.value) == "AccessDenied"


def test_upload_part_copy_with_ranges(s3: Any, bucket: str) -> None:
    source = os.urandom(12 * MIB + 3)
    s3.put_object(Bucket=bucket, Key="source", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    ranges = [(0, 5 * MIB - 1), (5 * MIB, 11 * MIB + 7), (11 * MIB + 8, 12 * MIB + 2)]
    parts = []
    for number, (first, last) in enumerate(ranges, start=1):
        result = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=number,
                                     CopySource={"Bucket": bucket, "Key": "source"},
                                     CopySourceRange=f"bytes={first}-{last}")
        assert result["CopyPartResult"]["ETag"] == f'"{hashlib.md5(source[first:last + 1]).hexdigest()}"'
        parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == source
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="x")["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=bucket, Key="x", UploadId=upload_id, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "source"}, CopySourceRange="bytes=999999999-")
    assert code(exc.value) == "InvalidRange"


def test_delete_objects_batch_and_quiet(s3: Any, bucket: str) -> None:
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"d/{i:02d}", Body=b"x")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"d/{i:02d}"} for i in range(6)]
                                                      + [{"Key": "never-existed"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted([f"d/{i:02d}" for i in range(6)] + ["never-existed"])
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"d/{i:02d}"} for i in range(6, 10)],
                                                     "Quiet": True})
    assert "Deleted" not in quiet and "Errors" not in quiet
    left = [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert left == ["d/10", "d/11"]
    bucket_resource = __import__("boto3").resource(
        "s3", endpoint_url=s3.meta.endpoint_url, region_name="us-east-1",
        aws_access_key_id=s3._request_signer._credentials.access_key,  # noqa: SLF001
        aws_secret_access_key=s3._request_signer._credentials.secret_key).Bucket(bucket)  # noqa: SLF001
    bucket_resource.objects.all().delete()  # what many tools do to empty a bucket
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_conditional_writes(s3: Any, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="cas", Body=b"v1", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfNoneMatch="*")
    assert code(exc.value) == "PreconditionFailed"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    second = s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfMatch=first["ETag"])
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="cas", Body=b"v3", IfMatch=first["ETag"])  # stale ETag
    assert code(exc.value) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"v2"
    assert second["ETag"] != first["ETag"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="cas")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="cas", UploadId=upload_id, PartNumber=1, Body=b"mp")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="cas", UploadId=upload_id, IfNoneMatch="*",
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert code(exc.value) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"v2"
