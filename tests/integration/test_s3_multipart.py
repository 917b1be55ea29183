"""Multipart upload with boto3: the managed transfer (threads, default checksums), and each
operation on its own, with the errors S3 gives for bad part lists."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

MIB = 1024 * 1024


def multipart_etag(parts: list[bytes]) -> str:
    return f'"{hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()}-{len(parts)}"'


def code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def test_managed_upload_and_download_with_threads(s3: Any, bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(23 * MIB + 123)
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4)
    s3.upload_file(str(source), bucket, "big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(data)
    parts = [data[i:i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    assert head["ETag"] == multipart_etag(parts)
    target = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(target), Config=config)  # ranged GETs in parallel
    assert target.read_bytes() == data
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_each_operation_and_list_parts(s3: Any, bucket: str) -> None:
    created = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="video/mp4",
                                         Metadata={"camera": "slope-3"})
    upload_id = created["UploadId"]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("mp", upload_id)]
    bodies = [os.urandom(5 * MIB), os.urandom(5 * MIB + 1), b"tail"]
    etags = []
    for number, body in enumerate(bodies, start=1):
        etags.append(s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=number,
                                    Body=body)["ETag"])
    # Re-uploading a part number replaces it.
    bodies[2] = b"the real tail"
    etags[2] = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=3, Body=bodies[2])["ETag"]
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == \
        [(i + 1, etags[i], len(bodies[i])) for i in range(3)]
    page = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id, MaxParts=2)
    assert page["IsTruncated"] and [p["PartNumber"] for p in page["Parts"]] == [1, 2]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
    assert done["ETag"] == multipart_etag(bodies)
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == b"".join(bodies)
    assert got["ContentType"] == "video/mp4" and got["Metadata"] == {"camera": "slope-3"}
    ranged = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={5 * MIB - 2}-{5 * MIB + 1}")
    assert ranged["Body"].read() == b"".join(bodies)[5 * MIB - 2:5 * MIB + 2]
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert code(exc.value) == "NoSuchUpload"


def test_abort_removes_the_upload(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone", UploadId=upload_id, PartNumber=1, Body=b"x" * 1000)
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=upload_id)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="gone", UploadId=upload_id, PartNumber=2, Body=b"x")
    assert code(exc.value) == "NoSuchUpload"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="gone")


@pytest.mark.parametrize("case,expected", [
    ("small_middle_part", "EntityTooSmall"), ("wrong_etag", "InvalidPart"),
    ("missing_part", "InvalidPart"), ("descending", "InvalidPartOrder"),
])
def test_bad_part_lists(s3: Any, bucket: str, case: str, expected: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="bad")["UploadId"]
    one = s3.upload_part(Bucket=bucket, Key="bad", UploadId=upload_id, PartNumber=1, Body=b"small")["ETag"]
    two = s3.upload_part(Bucket=bucket, Key="bad", UploadId=upload_id, PartNumber=2, Body=b"tail")["ETag"]
    parts = {
        "small_middle_part": [(1, one), (2, two)],
        "wrong_etag": [(1, '"00000000000000000000000000000000"'), (2, two)],
        "missing_part": [(1, one), (7, two)],
        "descending": [(2, two), (1, one)],
    }[case]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="bad", UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})
    assert code(exc.value) == expected
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad")


def test_unknown_upload_and_bad_part_number(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="k", UploadId="nosuchupload", PartNumber=1, Body=b"x")
    assert code(exc.value) == "NoSuchUpload"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=10001, Body=b"x")
    assert code(exc.value) == "InvalidArgument"


def test_malformed_complete_body(cluster: Any, s3: Any, bucket: str) -> None:
    from s3raw import send, sign
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    access_key, secret_key = cluster.credentials
    for body in (b"<not xml", b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part>"
                 b"</CompleteMultipartUpload>", b"<Other/>"):
        path = f"/{bucket}/m?uploadId={upload_id}"
        headers = sign(cluster.endpoint, access_key, secret_key, "POST", path, body=body)
        headers["Content-Length"] = str(len(body))
        resp = send(cluster.endpoint, "POST", path, headers, body)
        assert resp.status == 400 and resp.code == "MalformedXML"


def test_get_by_part_number(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="parts")["UploadId"]
    bodies = [os.urandom(5 * MIB), os.urandom(1000)]
    etags = [s3.upload_part(Bucket=bucket, Key="parts", UploadId=upload_id, PartNumber=i + 1, Body=b)["ETag"]
             for i, b in enumerate(bodies)]
    s3.complete_multipart_upload(Bucket=bucket, Key="parts", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
    second = s3.get_object(Bucket=bucket, Key="parts", PartNumber=2)
    assert second["Body"].read() == bodies[1] and second["PartsCount"] == 2
    assert s3.head_object(Bucket=bucket, Key="parts", PartNumber=1)["ContentLength"] == 5 * MIB
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="parts", PartNumber=3)
    assert code(exc.value) == "InvalidPartNumber"
    s3.put_object(Bucket=bucket, Key="single", Body=b"one part")
    assert s3.get_object(Bucket=bucket, Key="single", PartNumber=1)["Body"].read() == b"one part"
