"""Object tagging, and the answers to bucket configurations clients probe but we keep none of."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def test_object_tags_by_header_and_by_api(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="project=slopes&camera=lift%203")
    assert {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]} == \
        {"project": "slopes", "camera": "lift 3"}
    assert s3.get_object(Bucket=bucket, Key="t")["TagCount"] == 2
    before = s3.head_object(Bucket=bucket, Key="t")["LastModified"]
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "only", "Value": "one"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [{"Key": "only", "Value": "one"}]
    assert s3.head_object(Bucket=bucket, Key="t")["LastModified"] == before
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "t"})
    assert s3.get_object_tagging(Bucket=bucket, Key="copy")["TagSet"] == [{"Key": "only", "Value": "one"}]
    s3.copy_object(Bucket=bucket, Key="copy2", CopySource={"Bucket": bucket, "Key": "t"},
                   TaggingDirective="REPLACE", Tagging="new=tag")
    assert s3.get_object_tagging(Bucket=bucket, Key="copy2")["TagSet"] == [{"Key": "new", "Value": "tag"}]
    s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [
            {"Key": f"k{i}", "Value": "v"} for i in range(11)]})
    assert code(exc.value) == "InvalidTag"
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="missing")
    assert code(exc.value) == "NoSuchKey"


@pytest.mark.parametrize("call,expected", [
    ("get_bucket_cors", "NoSuchCORSConfiguration"), ("get_bucket_lifecycle_configuration",
                                                     "NoSuchLifecycleConfiguration"),
    ("get_bucket_policy", "NoSuchBucketPolicy"), ("get_bucket_tagging", "NoSuchTagSet"),
    ("get_bucket_website", "NoSuchWebsiteConfiguration"),
    ("get_bucket_encryption", "ServerSideEncryptionConfigurationNotFoundError"),
    ("get_object_lock_configuration", "ObjectLockConfigurationNotFoundError"),
    ("get_public_access_block", "NoSuchPublicAccessBlockConfiguration"),
])
def test_unconfigured_bucket_settings_read_as_absent(s3: Any, bucket: str, call: str, expected: str) -> None:
    with pytest.raises(ClientError) as exc:
        getattr(s3, call)(Bucket=bucket)
    assert code(exc.value) == expected
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_empty_configurations_and_unsupported_writes(s3: Any, bucket: str) -> None:
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket)
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    assert code(exc.value) == "NotImplemented"


def test_bucket_tags_are_stored_read_back_and_deleted(s3: Any, bucket: str) -> None:
    tags = [{"Key": "site", "Value": "north slope"}, {"Key": "owner", "Value": "lift-ops"}]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tags
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]})
    assert code(exc.value) == "InvalidTag"
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tags  # the refused set changed nothing
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert code(exc.value) == "NoSuchTagSet"


def test_tags_and_acls_of_a_given_version(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=bucket, Key="doc", Body=b"v1", Tagging="stage=draft")["VersionId"]
    new = s3.put_object(Bucket=bucket, Key="doc", Body=b"v2")["VersionId"]
    stage = [{"Key": "stage", "Value": "old"}]
    s3.put_object_tagging(Bucket=bucket, Key="doc", VersionId=old, Tagging={"TagSet": stage})
    assert s3.get_object_tagging(Bucket=bucket, Key="doc", VersionId=old)["TagSet"] == stage
    assert s3.get_object_tagging(Bucket=bucket, Key="doc")["TagSet"] == []  # the current one is untouched
    # Tagging the current version by its id shows on the object, and the other way round.
    s3.put_object_tagging(Bucket=bucket, Key="doc", VersionId=new,
                          Tagging={"TagSet": [{"Key": "stage", "Value": "final"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="doc")["TagSet"] == [{"Key": "stage", "Value": "final"}]
    s3.put_object_tagging(Bucket=bucket, Key="doc", Tagging={"TagSet": [{"Key": "stage", "Value": "shipped"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="doc", VersionId=new)["TagSet"] == \
        [{"Key": "stage", "Value": "shipped"}]
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId=old)["Body"].read() == b"v1"  # data untouched
    s3.put_object_acl(Bucket=bucket, Key="doc", VersionId=old, ACL="public-read")
    grants = s3.get_object_acl(Bucket=bucket, Key="doc", VersionId=old)["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in grants)
    assert not any(g["Grantee"].get("URI", "").endswith("AllUsers")
                   for g in s3.get_object_acl(Bucket=bucket, Key="doc")["Grants"])
    marker = s3.delete_object(Bucket=bucket, Key="doc")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="doc", VersionId=marker)
    assert code(exc.value) == "MethodNotAllowed"
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="doc", VersionId="0" * 20)
    assert code(exc.value) == "NoSuchVersion"
