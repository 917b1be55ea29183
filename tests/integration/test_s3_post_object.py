"""Browser uploads (POST Object) on a real cluster: forms made by boto3's
generate_presigned_post (SigV4) and minio's presigned_post_policy, posted as a browser
would (multipart/form-data, the file last), and the policy's conditions enforced."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from clusterlib import LocalCluster
from conftest import make_s3

minio = pytest.importorskip("minio")
from minio import Minio  # noqa: E402
from minio.datatypes import PostPolicy  # noqa: E402

TIMEOUT_S = 30


def post(url: str, fields: dict[str, str], data: bytes, filename: str = "photo.jpg") -> requests.Response:
    return requests.post(url, data=fields, files={"file": (filename, data)}, timeout=TIMEOUT_S,
                         allow_redirects=False)


def code_of(response: requests.Response) -> str:
    return ET.fromstring(response.content).findtext("Code") or ""


@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_a_boto3_presigned_post_uploads_with_its_fields(cluster: LocalCluster, s3: Any, bucket: str,
                                                        signature_version: str) -> None:
    """SigV4 (x-amz-credential, x-amz-signature) and SigV2 (AWSAccessKeyId, signature) forms."""
    signer = make_s3(cluster.endpoint, *cluster.credentials, signature_version=signature_version)
    form = signer.generate_presigned_post(
        bucket, "uploads/${filename}",
        Fields={"Content-Type": "image/jpeg", "x-amz-meta-camera": "lift-3", "success_action_status": "201"},
        Conditions=[{"Content-Type": "image/jpeg"}, {"x-amz-meta-camera": "lift-3"},
                    {"success_action_status": "201"}, ["starts-with", "$key", "uploads/"],
                    ["content-length-range", 1, 10 * 1024 * 1024]],
        ExpiresIn=600)
    data = os.urandom(3 * 1024 * 1024 + 11)  # several blocks
    assert ("x-amz-signature" in form["fields"]) == (signature_version == "s3v4")
    r = post(form["url"], form["fields"], data)
    assert r.status_code == 201, r.text
    root = ET.fromstring(r.content)
    assert root.findtext("{*}Key") == "uploads/photo.jpg" and root.findtext("{*}Bucket") == bucket
    assert root.findtext("{*}ETag") == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="uploads/photo.jpg")
    assert got["Body"].read() == data
    assert got["ContentType"] == "image/jpeg" and got["Metadata"] == {"camera": "lift-3"}


def test_the_policy_is_enforced(s3: Any, bucket: str) -> None:
    form = s3.generate_presigned_post(bucket, "small/${filename}", Conditions=[["content-length-range", 10, 100]],
                                      ExpiresIn=600)
    assert post(form["url"], form["fields"], b"x" * 50).status_code == 204
    too_big = post(form["url"], form["fields"], b"x" * 101, "big.bin")
    assert too_big.status_code == 400 and code_of(too_big) == "EntityTooLarge"
    too_small = post(form["url"], form["fields"], b"x" * 5, "tiny.bin")
    assert too_small.status_code == 400 and code_of(too_small) == "EntityTooSmall"
    for name in ("big.bin", "tiny.bin"):  # refused: nothing stored
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key=f"small/{name}")
    extra = post(form["url"], {**form["fields"], "x-amz-meta-sneaky": "yes"}, b"x" * 50)
    assert extra.status_code == 403 and b"Extra input fields" in extra.content
    other_key = post(form["url"], {**form["fields"], "key": "elsewhere/a"}, b"x" * 50)
    assert other_key.status_code == 403
    signature = "x-amz-signature" if "x-amz-signature" in form["fields"] else "signature"
    tampered = post(form["url"], {**form["fields"], signature: "A" + form["fields"][signature][1:]}, b"x" * 50)
    assert tampered.status_code == 403 and code_of(tampered) == "SignatureDoesNotMatch"
    expired = s3.generate_presigned_post(bucket, "late", ExpiresIn=-60)
    late = post(expired["url"], expired["fields"], b"x")
    assert late.status_code == 403 and b"expired" in late.content.lower()


def test_without_a_policy_only_a_public_write_bucket_takes_a_post(cluster: LocalCluster, s3: Any,
                                                                   bucket: str) -> None:
    url = f"{cluster.endpoint}/{bucket}"
    refused = post(url, {"key": "anon.txt"}, b"hello")
    assert refused.status_code == 403 and code_of(refused) == "AccessDenied"
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    redirected = post(url, {"key": "anon.txt", "success_action_redirect": "https://site.example/done"}, b"hello")
    assert redirected.status_code == 303
    assert redirected.headers["Location"].startswith("https://site.example/done?bucket=")
    assert s3.get_object(Bucket=bucket, Key="anon.txt")["Body"].read() == b"hello"
    no_file = requests.post(url, data={"key": "x"}, files={"other": ("a", b"b")}, timeout=TIMEOUT_S)
    assert no_file.status_code == 400


def test_a_minio_post_policy_uploads(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    host = cluster.endpoint.split("://", 1)[1]
    client = Minio(host, access_key=cluster.credentials[0], secret_key=cluster.credentials[1], secure=False)
    policy = PostPolicy(bucket, datetime.now(UTC) + timedelta(minutes=10))
    policy.add_starts_with_condition("key", "minio/")
    policy.add_content_length_range_condition(1, 1024)
    fields = client.presigned_post_policy(policy)
    r = post(f"{cluster.endpoint}/{bucket}", {**fields, "key": "minio/report.csv"}, b"a,b\n1,2\n")
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="minio/report.csv")["Body"].read() == b"a,b\n1,2\n"


def test_a_sigv2_policy_form_uploads(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    """The older form (AWSAccessKeyId + signature: HMAC-SHA1 of the policy), as s3cmd-era tools post."""
    access_key, secret = cluster.credentials
    policy = base64.b64encode(json.dumps({
        "expiration": (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [{"bucket": bucket}, ["starts-with", "$key", "v2/"]]}).encode()).decode()
    signature = base64.b64encode(hmac.new(secret.encode(), policy.encode(), hashlib.sha1).digest()).decode()
    r = post(f"{cluster.endpoint}/{bucket}", {"key": "v2/${filename}", "AWSAccessKeyId": access_key,
                                               "policy": policy, "signature": signature}, b"old style", "f.txt")
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="v2/f.txt")["Body"].read() == b"old style"


def test_a_bucket_policy_judges_the_object_a_form_names(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    inbox = {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
             "Resource": f"arn:aws:s3:::{bucket}/inbox/*"}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [inbox]}))
    url = f"{cluster.endpoint}/{bucket}"
    assert post(url, {"key": "inbox/${filename}"}, b"dropped").status_code == 204
    assert s3.get_object(Bucket=bucket, Key="inbox/photo.jpg")["Body"].read() == b"dropped"
    assert post(url, {"key": "elsewhere/${filename}"}, b"no").status_code == 403
    s3.delete_bucket_policy(Bucket=bucket)
