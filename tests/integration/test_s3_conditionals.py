"""GET/HEAD preconditions (304/412) and response-* header overrides."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError


def status_of(call: Any, **kw: Any) -> int:
    try:
        return int(call(**kw)["ResponseMetadata"]["HTTPStatusCode"])
    except ClientError as exc:
        return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


@pytest.mark.parametrize("method", ["get_object", "head_object"])
def test_preconditions(s3: Any, bucket: str, method: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")["ETag"]
    call = getattr(s3, method)
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    assert status_of(call, Bucket=bucket, Key="c", IfMatch=etag) == 200
    assert status_of(call, Bucket=bucket, Key="c", IfMatch='"not-it"') == 412
    assert status_of(call, Bucket=bucket, Key="c", IfNoneMatch=etag) == 304
    assert status_of(call, Bucket=bucket, Key="c", IfNoneMatch='"other"') == 200
    assert status_of(call, Bucket=bucket, Key="c", IfModifiedSince=future) == 304
    assert status_of(call, Bucket=bucket, Key="c", IfModifiedSince=past) == 200
    assert status_of(call, Bucket=bucket, Key="c", IfUnmodifiedSince=past) == 412
    assert status_of(call, Bucket=bucket, Key="c", IfUnmodifiedSince=future) == 200
    # RFC 7232 order: If-Match decides before If-Unmodified-Since, If-None-Match before If-Modified-Since.
    assert status_of(call, Bucket=bucket, Key="c", IfMatch=etag, IfUnmodifiedSince=past) == 200
    assert status_of(call, Bucket=bucket, Key="c", IfNoneMatch='"other"', IfModifiedSince=future) == 200


def test_response_header_overrides(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=b"x", ContentType="text/plain")
    got = s3.get_object(Bucket=bucket, Key="r", ResponseContentType="application/json",
                        ResponseContentDisposition='attachment; filename="r.json"',
                        ResponseCacheControl="no-cache", ResponseContentLanguage="de")
    assert got["ContentType"] == "application/json"
    assert got["ContentDisposition"] == 'attachment; filename="r.json"'
    assert got["CacheControl"] == "no-cache" and got["ContentLanguage"] == "de"
    assert s3.head_object(Bucket=bucket, Key="r")["ContentType"] == "text/plain"  # nothing stored changed
