"""S3 lifecycle rules on a real cluster: boto3's Put/Get/DeleteBucketLifecycleConfiguration,
and the lifecycle job (run through the admin API on every node, as of now or of a later
time) deleting what the rules say has expired — and nothing else."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from clusterlib import LocalCluster

from edgestore.cli.connect import ClusterTarget, admin_request

DAY = 86400
RULES = [
    {"ID": "old-footage", "Status": "Enabled", "Filter": {"Prefix": "cam/"}, "Expiration": {"Days": 30}},
    {"ID": "tagged-small", "Status": "Disabled",
     "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "keep", "Value": "no"}],
                        "ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 1000}},
     "Expiration": {"Days": 1}},
    {"ID": "versions", "Status": "Enabled", "Filter": {},
     "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
]


def code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def run_lifecycle(cluster: LocalCluster) -> list[dict[str, Any]]:
    """One pass on every node, each working every bucket it holds a name record of."""
    return [admin_request(ClusterTarget(cluster.url(i), *cluster.credentials), "POST",
                          "/_admin/jobs/lifecycle/run", {"all_buckets": True}) for i in range(cluster.nodes)]


def run_lifecycle_as_of(cluster: LocalCluster, bucket: str, as_of: float) -> dict[str, Any]:
    """One pass over ``bucket`` as of a later time, on the first node that works it (one
    only: a delete marker one node writes now would look days old to a second one)."""
    options = {"all_buckets": True, "as_of": as_of, "bucket": bucket}
    for i in range(cluster.nodes):
        counts: dict[str, Any] = admin_request(ClusterTarget(cluster.url(i), *cluster.credentials), "POST",
                                               "/_admin/jobs/lifecycle/run", options)
        if counts["buckets"]:
            return counts
    raise AssertionError("no node holds the bucket's name record")


def keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_rules_are_stored_read_back_and_deleted(s3: Any, bucket: str) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": RULES})
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == RULES
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code(exc.value) == "NoSuchLifecycleConfiguration"


@pytest.mark.parametrize("rule, expected", [
    ({"Status": "Enabled", "Filter": {}, "Expiration": {"Days": 0}}, "InvalidArgument"),
    ({"Status": "Enabled", "Filter": {}, "Expiration": {"Date": "2026-01-01T12:00:00Z"}}, "InvalidArgument"),
    ({"Status": "Enabled", "Filter": {}}, "InvalidRequest"),
    ({"Status": "Enabled", "Filter": {}, "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]},
     "NotImplemented"),
])
def test_rules_s3_would_refuse_or_we_do_not_apply_are_refused(s3: Any, bucket: str, rule: dict[str, Any],
                                                               expected: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rule]})
    assert code(exc.value) == expected
    with pytest.raises(ClientError):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)  # nothing was stored


def test_expiration_by_date_takes_only_what_the_filter_names(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    for key, body, tags in (("cam/1.jpg", b"x" * 100, "keep=no"), ("cam/2.jpg", b"x" * 100, "keep=yes"),
                            ("cam/huge.jpg", b"x" * 5000, "keep=no"), ("logs/a", b"x" * 100, "keep=no")):
        s3.put_object(Bucket=bucket, Key=key, Body=body, Tagging=tags)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "past", "Status": "Enabled", "Expiration": {"Date": "2020-01-01T00:00:00Z"},
         "Filter": {"And": {"Prefix": "cam/", "Tags": [{"Key": "keep", "Value": "no"}], "ObjectSizeLessThan": 1000}}},
        {"ID": "off", "Status": "Disabled", "Expiration": {"Date": "2020-01-01T00:00:00Z"},
         "Filter": {"Prefix": "logs/"}}]})
    counts = run_lifecycle(cluster)
    assert sum(c["expired"] for c in counts) == 1
    assert keys(s3, bucket) == ["cam/2.jpg", "cam/huge.jpg", "logs/a"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="cam/1.jpg")
    assert code(exc.value) == "NoSuchKey"
    s3.put_object(Bucket=bucket, Key="cam/1.jpg", Body=b"again", Tagging="keep=yes")  # no longer matches
    run_lifecycle(cluster)
    assert s3.get_object(Bucket=bucket, Key="cam/1.jpg")["Body"].read() == b"again"


def test_days_rules_as_of_later_times(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    """Expiration days (rounded up to midnight UTC), noncurrent versions and unfinished
    uploads, judged by the job as of a later time."""
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="cam/clip", Body=b"v1")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="cam/clip", Body=b"v2")["VersionId"]
    s3.put_object(Bucket=bucket, Key="docs/manual", Body=b"kept")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="cam/big")["UploadId"]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "cam", "Status": "Enabled", "Filter": {"Prefix": "cam/"}, "Expiration": {"Days": 2},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}}]})
    now = time.time()
    # Later today: nothing is due yet (2 days, rounded up to a midnight UTC; 1 day since v1
    # was superseded, rounded the same way).
    run_lifecycle_as_of(cluster, bucket, (now // DAY + 1) * DAY - 1)
    versions = s3.list_object_versions(Bucket=bucket, Prefix="cam/")["Versions"]
    assert {v["VersionId"] for v in versions} == {first, second}
    # Three days on: the clip expires (a delete marker over v2), v1 goes for good, the
    # upload is aborted; v2 became noncurrent just now and stays.
    counts = run_lifecycle_as_of(cluster, bucket, now + 3 * DAY + 1)
    assert (counts["expired"], counts["noncurrent_expired"], counts["uploads_aborted"]) == (1, 1, 1)
    listing = s3.list_object_versions(Bucket=bucket, Prefix="cam/")
    assert [v["VersionId"] for v in listing["Versions"]] == [second]
    assert [m["IsLatest"] for m in listing["DeleteMarkers"]] == [True]
    assert s3.get_object(Bucket=bucket, Key="cam/clip", VersionId=second)["Body"].read() == b"v2"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError):
        s3.list_parts(Bucket=bucket, Key="cam/big", UploadId=upload)
    assert s3.get_object(Bucket=bucket, Key="docs/manual")["Body"].read() == b"kept"
