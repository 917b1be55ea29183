"""Bucket policies on a real cluster: boto3's Put/Get/DeleteBucketPolicy and
GetBucketPolicyStatus, minio's set_bucket_policy (what `mc anonymous set download` sends),
and their effect on anonymous callers, other accounts' users and the owner."""

from __future__ import annotations

import io
import json
import os
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from clusterlib import LocalCluster
from conftest import make_s3
from swiftlib import create_user

TIMEOUT_S = 30
OTHER_ACCOUNT = f"neighbours{os.getpid()}"


@pytest.fixture(scope="module")
def other(cluster: LocalCluster) -> Any:
    """boto3 for a user of another account."""
    keys = create_user(cluster, OTHER_ACCOUNT, "bob")
    return make_s3(cluster.endpoint, keys["access_key"], keys["secret_key"])


def code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def statement(effect: str, principal: Any, actions: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": effect, "Principal": principal, "Action": actions, "Resource": resources, **extra}


def test_a_public_read_policy_opens_objects_to_anonymous_readers_only(cluster: LocalCluster, s3: Any,
                                                                       bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="pub/a.txt", Body=b"public")
    s3.put_object(Bucket=bucket, Key="priv/b.txt", Body=b"private")
    url = f"{cluster.endpoint}/{bucket}"
    assert requests.get(f"{url}/pub/a.txt", timeout=TIMEOUT_S).status_code == 403
    policy = {"Version": "2012-10-17", "Statement": [
        statement("Allow", "*", ["s3:GetObject"], [f"arn:aws:s3:::{bucket}/pub/*"])]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == policy
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    got = requests.get(f"{url}/pub/a.txt", timeout=TIMEOUT_S)
    assert got.status_code == 200 and got.content == b"public"
    assert requests.get(f"{url}/priv/b.txt", timeout=TIMEOUT_S).status_code == 403
    assert requests.put(f"{url}/pub/new.txt", data=b"x", timeout=TIMEOUT_S).status_code == 403
    assert requests.get(url, timeout=TIMEOUT_S).status_code == 403  # listing was not granted
    s3.delete_bucket_policy(Bucket=bucket)
    assert requests.get(f"{url}/pub/a.txt", timeout=TIMEOUT_S).status_code == 403
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket=bucket)
    assert code(exc.value) == "NoSuchBucketPolicy"


def test_a_deny_binds_the_owner_too_but_never_locks_the_policy(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="keep/me", Body=b"1")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [
        statement("Deny", "*", ["s3:DeleteObject", "s3:PutObject"], [f"arn:aws:s3:::{bucket}/keep/*"])]}))
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="keep/me")
    assert code(exc.value) == "AccessDenied"
    with pytest.raises(ClientError):
        s3.put_object(Bucket=bucket, Key="keep/other", Body=b"2")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "keep/me"}, {"Key": "free"}]})
    assert [e["Key"] for e in result["Errors"]] == ["keep/me"] and [d["Key"] for d in result["Deleted"]] == ["free"]
    s3.put_object(Bucket=bucket, Key="elsewhere", Body=b"3")  # outside the denied prefix
    s3.delete_bucket_policy(Bucket=bucket)  # the owner can always change the policy
    s3.delete_object(Bucket=bucket, Key="keep/me")


def test_another_accounts_user_gets_what_the_policy_grants_it(s3: Any, other: Any, bucket: str) -> None:
    account = OTHER_ACCOUNT
    s3.put_object(Bucket=bucket, Key="shared/doc", Body=b"doc")
    with pytest.raises(ClientError):
        other.get_object(Bucket=bucket, Key="shared/doc")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [
        statement("Allow", {"AWS": f"arn:aws:iam::{account}:root"}, ["s3:GetObject", "s3:PutObject"],
                  [f"arn:aws:s3:::{bucket}/shared/*"]),
        statement("Allow", {"AWS": [account]}, ["s3:ListBucket"], [f"arn:aws:s3:::{bucket}"],
                  Condition={"StringLike": {"s3:prefix": "shared/*"}})]}))
    assert other.get_object(Bucket=bucket, Key="shared/doc")["Body"].read() == b"doc"
    other.put_object(Bucket=bucket, Key="shared/reply", Body=b"reply")
    assert [o["Key"] for o in other.list_objects_v2(Bucket=bucket, Prefix="shared/")["Contents"]] == \
        ["shared/doc", "shared/reply"]
    with pytest.raises(ClientError):
        other.list_objects_v2(Bucket=bucket)  # no prefix: the condition does not hold
    with pytest.raises(ClientError):
        other.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [
            statement("Allow", "*", ["s3:*"], [f"arn:aws:s3:::{bucket}/*"])]}))
    s3.delete_bucket_policy(Bucket=bucket)


@pytest.mark.parametrize("policy, expected", [
    ("{not json", "MalformedPolicy"),
    (json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                "Resource": "arn:aws:s3:::some-other-bucket/*"}]}), "MalformedPolicy"),
    (json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                                "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}]}),
     "MalformedPolicy"),
])
def test_bad_policies_are_refused(s3: Any, bucket: str, policy: str, expected: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    assert code(exc.value) == expected
    with pytest.raises(ClientError):
        s3.get_bucket_policy(Bucket=bucket)


def test_an_unsupported_condition_is_not_implemented_rather_than_ignored(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [
            statement("Allow", "*", ["s3:GetObject"], [f"arn:aws:s3:::{bucket}/*"],
                      Condition={"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}})]}))
    assert code(exc.value) == "NotImplemented"


def test_minio_download_policy_lets_anyone_list_and_read(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    """The policy `mc anonymous set download` puts, sent through minio-py."""
    minio = pytest.importorskip("minio")
    client = minio.Minio(cluster.endpoint.split("://", 1)[1], access_key=cluster.credentials[0],
                         secret_key=cluster.credentials[1], secure=False)
    s3.put_object(Bucket=bucket, Key="report.csv", Body=b"a,b")
    download = {"Version": "2012-10-17", "Statement": [
        statement("Allow", {"AWS": ["*"]}, ["s3:GetBucketLocation", "s3:ListBucket"], [f"arn:aws:s3:::{bucket}"]),
        statement("Allow", {"AWS": ["*"]}, ["s3:GetObject"], [f"arn:aws:s3:::{bucket}/*"])]}
    client.set_bucket_policy(bucket, json.dumps(download))
    assert json.loads(client.get_bucket_policy(bucket)) == download
    anonymous = minio.Minio(cluster.endpoint.split("://", 1)[1], secure=False)
    assert [o.object_name for o in anonymous.list_objects(bucket)] == ["report.csv"]
    assert anonymous.get_object(bucket, "report.csv").read() == b"a,b"
    with pytest.raises(minio.error.S3Error):
        anonymous.put_object(bucket, "nope", io.BytesIO(b"x"), 1)
    client.delete_bucket_policy(bucket)
