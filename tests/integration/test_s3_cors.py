"""Bucket CORS on a real cluster: boto3's Put/Get/DeleteBucketCors, and the requests a
browser sends — a preflight OPTIONS without credentials, then the actual request with an
Origin header — answered with the Access-Control-* headers the rules allow."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from clusterlib import LocalCluster

TIMEOUT_S = 30
RULES = [
    {"ID": "app", "AllowedOrigins": ["https://*.farm.example"], "AllowedMethods": ["GET", "PUT"],
     "AllowedHeaders": ["Content-Type", "x-amz-*"], "ExposeHeaders": ["ETag", "x-amz-request-id"],
     "MaxAgeSeconds": 600},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]},
]


def code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def preflight(url: str, origin: str | None, method: str | None, headers: str | None = None) -> requests.Response:
    sent = {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
    return requests.options(url, headers={k: v for k, v in sent.items() if v is not None}, timeout=TIMEOUT_S)


def test_cors_rules_are_stored_read_back_and_deleted(s3: Any, bucket: str) -> None:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=bucket)
    assert code(exc.value) == "NoSuchCORSConfiguration"


@pytest.mark.parametrize("rule, expected", [
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}, "InvalidRequest"),
    ({"AllowedOrigins": ["https://*.*.example"], "AllowedMethods": ["GET"]}, "InvalidRequest"),
    ({"AllowedOrigins": [], "AllowedMethods": ["GET"]}, "MalformedXML"),
])
def test_bad_rules_are_refused(s3: Any, bucket: str, rule: dict[str, Any], expected: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
    assert code(exc.value) == expected and exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_preflight_is_answered_by_the_first_matching_rule(cluster: LocalCluster, s3: Any, bucket: str) -> None:
    url = f"{cluster.endpoint}/{bucket}/photos/lift.jpg"
    unset = preflight(url, "https://app.farm.example", "PUT")
    assert unset.status_code == 403 and b"CORS is not enabled" in unset.content
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    ok = preflight(url, "https://app.farm.example", "PUT", "content-type, X-Amz-Date")
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.farm.example"
    assert ok.headers["Access-Control-Allow-Methods"] == "GET, PUT"
    assert ok.headers["Access-Control-Allow-Headers"] == "content-type, X-Amz-Date"
    assert ok.headers["Access-Control-Max-Age"] == "600"
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    anyone = preflight(url, "https://elsewhere.example", "GET")
    assert anyone.status_code == 200 and anyone.headers["Access-Control-Allow-Origin"] == "*"
    for origin, method, headers in (("https://elsewhere.example", "PUT", None),          # no rule lets it PUT
                                    ("https://app.farm.example", "PUT", "x-secret"),      # header not allowed
                                    ("http://app.farm.example", "DELETE", None)):         # method nowhere
        refused = preflight(url, origin, method, headers)
        assert refused.status_code == 403 and b"<Code>AccessForbidden</Code>" in refused.content
    assert preflight(url, None, "GET").status_code == 400
    assert preflight(url, "https://app.farm.example", None).status_code == 400


def test_actual_requests_from_an_allowed_origin_carry_cors_headers(cluster: LocalCluster, s3: Any,
                                                                   bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="public.txt", Body=b"hello", ACL="public-read")
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    url = f"{cluster.endpoint}/{bucket}/public.txt"
    got = requests.get(url, headers={"Origin": "https://app.farm.example"}, timeout=TIMEOUT_S)
    assert got.status_code == 200 and got.content == b"hello"
    assert got.headers["Access-Control-Allow-Origin"] == "https://app.farm.example"
    assert got.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert got.headers["ETag"].strip('"') == hashlib.md5(b"hello").hexdigest()
    missing = requests.get(url + "-missing", headers={"Origin": "https://x.example"}, timeout=TIMEOUT_S)
    assert missing.status_code in (403, 404) and missing.headers["Access-Control-Allow-Origin"] == "*"
    no_origin = requests.get(url, timeout=TIMEOUT_S)
    assert "Access-Control-Allow-Origin" not in no_origin.headers
    not_allowed = requests.delete(url, headers={"Origin": "https://app.farm.example"}, timeout=TIMEOUT_S)
    assert "Access-Control-Allow-Origin" not in not_allowed.headers


def test_only_the_owner_manages_cors(s3: Any, bucket: str, cluster: LocalCluster) -> None:
    anonymous = requests.put(f"{cluster.endpoint}/{bucket}?cors", timeout=TIMEOUT_S,
                             data=b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
                                  b"<AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>")
    assert anonymous.status_code == 403
    with pytest.raises(ClientError):
        s3.get_bucket_cors(Bucket=bucket)
