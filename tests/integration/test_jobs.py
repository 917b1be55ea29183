"""Background jobs run on demand through the admin API: abandoned multipart uploads."""

from __future__ import annotations

from typing import Any

from edgestore.cli.connect import ClusterTarget, admin_request


def run_job_everywhere(cluster: Any, name: str, options: dict[str, Any]) -> list[dict[str, Any]]:
    access_key, secret_key = cluster.credentials
    return [admin_request(ClusterTarget(cluster.url(i), access_key, secret_key), "POST",
                          f"/_admin/jobs/{name}/run", options) for i in range(cluster.nodes)]


def test_abandoned_uploads_are_aborted_and_fresh_ones_kept(cluster: Any, s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="left-behind")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="left-behind", UploadId=upload, PartNumber=1, Body=b"x" * 1000)
    results = run_job_everywhere(cluster, "stale-uploads", {})  # the default age: a week
    assert sum(r["aborted"] for r in results) == 0
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [upload]
    results = run_job_everywhere(cluster, "stale-uploads", {"max_age_s": 0})
    assert sum(r["aborted"] for r in results) >= 1
    assert sum(r["uploads_seen"] for r in results) >= 3  # every replica of the record was looked at
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_jobs_report_their_state_and_refuse_strangers(cluster: Any) -> None:
    import urllib.error
    import urllib.request
    access_key, secret_key = cluster.credentials
    states = admin_request(ClusterTarget(cluster.url(0), access_key, secret_key), "GET", "/_admin/jobs")
    assert "stale-uploads" in states and "runs" in states["stale-uploads"]
    request = urllib.request.Request(cluster.url(0) + "/_admin/jobs/stale-uploads/run", data=b"{}", method="POST")
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("an unsigned job run was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403


def test_a_job_option_out_of_range_or_not_a_number_is_a_400(cluster: Any) -> None:
    import pytest

    from edgestore.cli import CliError
    access_key, secret_key = cluster.credentials
    target = ClusterTarget(cluster.url(0), access_key, secret_key)
    for bad in ("x", None, 0, 2):
        with pytest.raises(CliError, match=" 400 "):
            admin_request(target, "POST", "/_admin/jobs/compaction/run", {"dead_share": bad})
    assert admin_request(target, "POST", "/_admin/jobs/compaction/run", {"dead_share": 0.5})["errors"] == 0
