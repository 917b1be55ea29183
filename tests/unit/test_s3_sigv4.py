"""S3 request authentication against AWS's published examples and what botocore really sends.

botocore signs with its own clock; the verifier is then given ``now`` equal to the signing
time read back from the request (no clock is mocked).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from edgestore.api.s3.checksums import new_checksum, parse_requested
from edgestore.api.s3.checksums import verify as checksum_verify
from edgestore.api.s3.chunked import AwsChunkedDecoder
from edgestore.api.s3.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    RequestTimeTooSkewed,
    S3Error,
    SignatureDoesNotMatch,
)
from edgestore.api.s3.sigv4 import (
    EMPTY_SHA256,
    AuthResult,
    PayloadMode,
    SignedRequest,
    authenticate,
    canonical_query_string,
    canonical_uri,
    derive_signing_key,
    parse_query,
)
from edgestore.sigv4_client import sign_headers

AK = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ENDPOINT = "http://127.0.0.1:9000"
DOC_TIME = datetime(2013, 5, 24, tzinfo=UTC)
DOC_HOST = "examplebucket.s3.amazonaws.com"


class Lookup:
    """A secret lookup that counts its calls."""

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        self.secrets = dict({AK: SECRET} if secrets is None else secrets)
        self.calls: list[str] = []

    async def __call__(self, access_key: str) -> str | None:
        self.calls.append(access_key)
        return self.secrets.get(access_key)


def verify(req: SignedRequest, now: datetime, lookup: Lookup | None = None) -> AuthResult | None:
    return asyncio.run(authenticate(req, lookup or Lookup(), now))


def headers_of(pairs: Mapping[str, str] | list[tuple[str, str]]) -> CIMultiDictProxy[str]:
    """Headers as aiohttp hands them over: a case-insensitive multidict."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return CIMultiDictProxy(CIMultiDict(items))


# --- botocore plumbing ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """botocore must not read this machine's AWS config or environment."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REQUEST_CHECKSUM_CALCULATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))


class Captured(Exception):
    def __init__(self, request: AWSPreparedRequest) -> None:
        super().__init__("captured")
        self.request = request


def _capture(request: AWSPreparedRequest, **_: Any) -> None:
    raise Captured(request)


def boto_client(endpoint: str = ENDPOINT, **config: Any) -> Any:
    session = boto3.session.Session(aws_access_key_id=AK, aws_secret_access_key=SECRET, region_name="us-east-1")
    client = session.client(
        "s3", endpoint_url=endpoint,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )
    client.meta.events.register("before-send", _capture)
    return client


def sent(call: Callable[[], Any]) -> AWSPreparedRequest:
    """The request botocore would have put on the wire for ``call``."""
    with pytest.raises(Captured) as info:
        call()
    return info.value.request


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def body_of(prepared: AWSPreparedRequest) -> bytes:
    body = prepared.body
    if body is None:
        return b""
    if hasattr(body, "read"):
        return bytes(body.read())
    return body if isinstance(body, bytes) else str(body).encode()


def to_signed(prepared: AWSPreparedRequest, host_bucket: str | None = None) -> SignedRequest:
    parts = urlsplit(prepared.url)
    headers = CIMultiDict((k, _text(v)) for k, v in prepared.headers.items())
    headers.setdefault("Host", parts.netloc)
    return SignedRequest(prepared.method, parts.path, parts.query, CIMultiDictProxy(headers), host_bucket=host_bucket)


def from_url(method: str, url: str, extra: Mapping[str, str] | None = None) -> SignedRequest:
    parts = urlsplit(url)
    return SignedRequest(method, parts.path, parts.query, headers_of({"Host": parts.netloc, **(extra or {})}))


def signing_time(req: SignedRequest) -> datetime:
    headers = CIMultiDict(req.headers)
    query = dict(parse_query(req.raw_query))
    amz = headers.get("x-amz-date") or query.get("X-Amz-Date")
    if amz:
        return datetime.strptime(amz, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return parsedate_to_datetime(headers["Date"])


def check(req: SignedRequest, now: datetime | None = None) -> AuthResult:
    result = verify(req, now or signing_time(req))
    assert result is not None and result.access_key == AK
    return result


KEYS = [
    "plain.txt",
    "with space",
    "unicode/ü/日本語/ñ",
    "plus+sign",
    "percent%25%",
    "tilde~x",
    "eq=ual",
    "amp&ersand",
    "slash//runs///x",
    "/leading",
    "trailing/",
    "quote'(paren)*!",
    "question?mark#hash",
    "semi;colon:colon@at$dollar,comma",
    "../dots/./x",
    "a%2Fb encoded-looking",
]


# --- AWS documentation examples -------------------------------------------------------------


def doc_request(method: str, target: str, headers: dict[str, str], signed: str, signature: str) -> SignedRequest:
    auth = (f"AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request,"
            f"SignedHeaders={signed},Signature={signature}")
    return SignedRequest.from_target(method, target, headers_of({"Host": DOC_HOST, **headers, "Authorization": auth}))


def test_doc_get_object() -> None:
    req = doc_request("GET", "/test.txt", {"Range": "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256,
                                          "x-amz-date": "20130524T000000Z"},
                      "host;range;x-amz-content-sha256;x-amz-date",
                      "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    result = check(req, DOC_TIME)
    assert result.payload_mode is PayloadMode.SIGNED and result.content_sha256 == EMPTY_SHA256
    assert result.scope == "20130524/us-east-1/s3/aws4_request" and result.region == "us-east-1"
    assert result.signing_key == derive_signing_key(SECRET, "20130524", "us-east-1")


def test_doc_put_object_with_date_header() -> None:
    payload = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
    req = doc_request("PUT", "/test%24file.text",
                      {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-date": "20130524T000000Z",
                       "x-amz-storage-class": "REDUCED_REDUNDANCY", "x-amz-content-sha256": payload},
                      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                      "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    assert check(req, DOC_TIME).content_sha256 == payload


@pytest.mark.parametrize(("target", "signature"), [
    ("/?lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    ("/?max-keys=2&prefix=J", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ("/?prefix=J&max-keys=2", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
])
def test_doc_bucket_queries(target: str, signature: str) -> None:
    req = doc_request("GET", target, {"x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": "20130524T000000Z"},
                      "host;x-amz-content-sha256;x-amz-date", signature)
    check(req, DOC_TIME)


DOC_PRESIGNED = (
    "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)


def test_doc_presigned_url() -> None:
    result = check(from_url("GET", DOC_PRESIGNED), DOC_TIME + timedelta(hours=23))
    assert result.presigned and result.payload_mode is PayloadMode.UNSIGNED


def test_doc_presigned_url_expires_after_a_day() -> None:
    with pytest.raises(AccessDenied, match="Request has expired") as info:
        verify(from_url("GET", DOC_PRESIGNED), DOC_TIME + timedelta(seconds=86401))
    assert info.value.status == 403
    assert info.value.fields["Expires"] == "2013-05-25T00:00:00Z"


def test_doc_presigned_url_not_yet_valid() -> None:
    verify(from_url("GET", DOC_PRESIGNED), DOC_TIME - timedelta(minutes=14))
    with pytest.raises(AccessDenied, match="not yet valid"):
        verify(from_url("GET", DOC_PRESIGNED), DOC_TIME - timedelta(minutes=16))


V2_DOC_HOST = "johnsmith.s3.amazonaws.com"


@pytest.mark.parametrize(("method", "target", "headers", "signature"), [
    ("GET", "/photos/puppy.jpg", {"Date": "Tue, 27 Mar 2007 19:36:42 +0000"}, "bWq2s1WEIj+Ydj0vQ697zp+IXMU="),
    ("PUT", "/photos/puppy.jpg", {"Content-Type": "image/jpeg", "Content-Length": "94328",
                                  "Date": "Tue, 27 Mar 2007 21:15:45 +0000"}, "MyyxeRY7whkBe+bq8fHCL/2kKUg="),
    ("GET", "/?acl", {"Date": "Tue, 27 Mar 2007 19:44:46 +0000"}, "c2WLPFtWHVgbEmeEG93a4cG37dM="),
])
def test_doc_sigv2_header(method: str, target: str, headers: dict[str, str], signature: str) -> None:
    all_headers = headers_of({"Host": V2_DOC_HOST, **headers, "Authorization": f"AWS {AK}:{signature}"})
    req = SignedRequest.from_target(method, target, all_headers, host_bucket="johnsmith")
    result = check(req, parsedate_to_datetime(headers["Date"]))
    assert result.signature_version == 2 and result.payload_mode is PayloadMode.UNSIGNED


def test_doc_sigv2_query() -> None:
    url = (f"http://{V2_DOC_HOST}/photos/puppy.jpg?AWSAccessKeyId={AK}&Expires=1175139620"
           "&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D")
    req = SignedRequest.from_target("GET", url.split(V2_DOC_HOST)[1], headers_of({"Host": V2_DOC_HOST}),
                                    host_bucket="johnsmith")
    assert check(req, datetime(2007, 3, 29, tzinfo=UTC)).presigned
    with pytest.raises(AccessDenied, match="expired"):
        verify(req, datetime(2007, 3, 30, tzinfo=UTC))


# --- what the botocore S3 client sends ------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
def test_client_object_operations(key: str) -> None:
    client = boto_client()
    put = to_signed(sent(lambda: client.put_object(
        Bucket="bucket", Key=key, Body=b"data", Metadata={"note": "  two  spaces\tand tab "}
    )))
    result = check(put)
    assert result.payload_mode is PayloadMode.SIGNED
    assert result.content_sha256 == hashlib.sha256(b"data").hexdigest()
    for call in (
        lambda: client.get_object(Bucket="bucket", Key=key, Range="bytes=0-1"),
        lambda: client.head_object(Bucket="bucket", Key=key),
        lambda: client.get_object_acl(Bucket="bucket", Key=key),
        lambda: client.get_object(Bucket="bucket", Key=key, VersionId="v 1+2", ResponseContentType="a/b c"),
        lambda: client.upload_part(Bucket="bucket", Key=key, UploadId="up/id+=", PartNumber=3, Body=b"p"),
        lambda: client.delete_object(Bucket="bucket", Key=key),
    ):
        check(to_signed(sent(call)))


@pytest.mark.parametrize("key", KEYS)
def test_client_listing_with_awkward_parameters(key: str) -> None:
    client = boto_client()
    check(to_signed(sent(lambda: client.list_objects_v2(Bucket="bucket", Prefix=key, Delimiter="/", StartAfter=""))))
    check(to_signed(sent(lambda: client.list_object_versions(Bucket="bucket", Prefix=key, KeyMarker=""))))


def test_client_delete_objects_post() -> None:
    client = boto_client()
    req = to_signed(sent(lambda: client.delete_objects(
        Bucket="bucket", Delete={"Objects": [{"Key": k} for k in KEYS]}
    )))
    assert req.raw_query == "delete"
    check(req)


class _BodyReader:
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    async def read(self, n: int = -1) -> bytes:
        return self._data.read(n)


@pytest.mark.parametrize("size", [0, 5, 3 * 1024 * 1024 + 1])
def test_client_https_put_uses_unsigned_trailer(size: int) -> None:
    """End to end: botocore over TLS sends aws-chunked with a CRC32 trailer; it verifies and decodes."""
    client = boto_client("https://127.0.0.1:9000")
    payload = bytes(i % 253 for i in range(size))
    prepared = sent(lambda: client.upload_part(Bucket="bucket", Key="k k", UploadId="u", PartNumber=2,
                                               Body=io.BytesIO(payload)))
    req = to_signed(prepared)
    result = check(req)
    assert result.payload_mode is PayloadMode.STREAMING_UNSIGNED_TRAILER
    assert result.payload_mode.is_aws_chunked and not result.payload_mode.has_chunk_signatures
    requested = parse_requested(req.headers)
    assert requested is not None and requested.location == "trailer"
    decoder = AwsChunkedDecoder.from_headers(_BodyReader(body_of(prepared)), result, req.headers)
    computed = new_checksum(requested.algorithm)

    async def run() -> bytes:
        pieces = []
        async for piece in decoder:
            computed.update(piece)
            pieces.append(piece)
        return b"".join(pieces)

    assert asyncio.run(run()) == payload
    checksum_verify(requested.algorithm, decoder.trailers[requested.header], computed)


@pytest.mark.parametrize("key", KEYS)
def test_client_presigned_v4(key: str) -> None:
    client = boto_client(signature_version="s3v4")
    for method, name, params in (
        ("GET", "get_object", {"Bucket": "bucket", "Key": key, "ResponseContentDisposition": "attachment; x=y"}),
        ("PUT", "put_object", {"Bucket": "bucket", "Key": key}),
    ):
        url = client.generate_presigned_url(name, Params=params, ExpiresIn=60)
        req = from_url(method, url)
        assert check(req).presigned
        with pytest.raises(AccessDenied, match="Request has expired"):
            verify(req, signing_time(req) + timedelta(seconds=61))


@pytest.mark.parametrize("key", KEYS)
def test_client_sigv2_header_and_query(key: str) -> None:
    client = boto_client(signature_version="s3")
    for call in (
        lambda: client.put_object(Bucket="bucket", Key=key, Body=b"data", ContentType="text/plain",
                                  Metadata={"a": "b"}),
        lambda: client.get_object_acl(Bucket="bucket", Key=key),
        lambda: client.list_objects(Bucket="bucket", Prefix=key),
    ):
        assert check(to_signed(sent(call))).signature_version == 2
    url = client.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": key}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url
    assert check(from_url("GET", url), datetime.now(UTC)).presigned


# --- botocore's signers on hand-built requests ----------------------------------------------


def botocore_signed(signer: Any, method: str, url: str, headers: list[tuple[str, str]] | None = None,
                    body: bytes = b"", auth_path: str | None = None) -> SignedRequest:
    request = AWSRequest(method=method, url=url, data=body, auth_path=auth_path)
    for name, value in headers or []:
        request.headers[name] = value  # an email.message.Message: setting twice adds a second header
    signer.add_auth(request)
    # Not request.prepare(): that folds repeated headers into one, which is not what goes on the wire.
    parts = urlsplit(request.url)
    wire = CIMultiDict((k, _text(v)) for k, v in request.headers.items())
    wire.setdefault("Host", parts.netloc)
    return SignedRequest(method, parts.path, parts.query, CIMultiDictProxy(wire))


CREDENTIALS = Credentials(AK, SECRET)
QUERIES = [
    "list-type=2&prefix=&delimiter=%2F",
    "a=2&a=1&a=",
    "acl",
    "uploads&prefix=x",
    "versionId=abc%2Bdef&response-content-type=text%2Fplain",
    "tagging&x-id=PutObjectTagging",
    "Z=1&a=1&_=1&-=1&~=1",
    "key=%E6%97%A5%E6%9C%AC",
]


@pytest.mark.parametrize("query", QUERIES)
def test_botocore_sigv4_header_queries(query: str) -> None:
    headers = [("x-amz-meta-multi", "one"), ("x-amz-meta-multi", "two"), ("X-Amz-Meta-Spaces", "a   b\t c")]
    req = botocore_signed(S3SigV4Auth(CREDENTIALS, "s3", "eu-west-3"), "GET", f"{ENDPOINT}/b/k?{query}", headers)
    assert check(req).region == "eu-west-3"


@pytest.mark.parametrize("query", QUERIES)
def test_botocore_sigv4_presigned_queries(query: str) -> None:
    url = _presign_url(S3SigV4QueryAuth(CREDENTIALS, "s3", "us-east-1", expires=600), f"{ENDPOINT}/b/k?{query}")
    assert check(from_url("GET", url)).presigned


def _presign_url(signer: Any, url: str) -> str:
    request = AWSRequest(method="GET", url=url)
    signer.add_auth(request)
    return str(request.prepare().url)


@pytest.mark.parametrize("query", ["", "acl", "versionId=3&uploadId=x&partNumber=1", "uploads&max-uploads=3"])
def test_botocore_sigv2_virtual_host(query: str) -> None:
    url = f"http://bucket.s3.example:9000/some%20key{'?' + query if query else ''}"
    req = botocore_signed(HmacV1Auth(CREDENTIALS), "GET", url, [("x-amz-meta-a", "1")], auth_path="/bucket/some%20key")
    check(SignedRequest(req.method, req.raw_path, req.raw_query, req.headers, host_bucket="bucket"))
    with pytest.raises(SignatureDoesNotMatch):  # the resource includes the bucket
        verify(req, signing_time(req))


def test_botocore_sigv2_query_auth() -> None:
    url = _presign_url(HmacV1QueryAuth(CREDENTIALS, expires=120), f"{ENDPOINT}/b/k%2Bplus?versionId=7")
    check(from_url("GET", url), datetime.now(UTC))


# --- refusals --------------------------------------------------------------------------------


def _put() -> SignedRequest:
    return to_signed(sent(lambda: boto_client().put_object(Bucket="b", Key="k", Body=b"x", ContentType="a/b")))


def _with_headers(req: SignedRequest, **changes: str | None) -> SignedRequest:
    headers = CIMultiDict(req.headers)
    for name, value in changes.items():
        name = name.replace("_", "-")
        headers.popall(name, None)
        if value is not None:
            headers[name] = value
    return SignedRequest(req.method, req.raw_path, req.raw_query, CIMultiDictProxy(headers))


def test_wrong_secret() -> None:
    req = _put()
    with pytest.raises(SignatureDoesNotMatch) as info:
        verify(req, signing_time(req), Lookup({AK: "not the secret"}))
    assert info.value.status == 403


def test_unknown_access_key() -> None:
    req = _put()
    with pytest.raises(InvalidAccessKeyId) as info:
        verify(req, signing_time(req), Lookup({}))
    assert info.value.fields["AWSAccessKeyId"] == AK


@pytest.mark.parametrize("change", [
    {"content_type": "a/c"},
    {"x_amz_content_sha256": hashlib.sha256(b"y").hexdigest()},
    {"host": "127.0.0.1:9001"},
])
def test_tampered_signed_header(change: dict[str, str]) -> None:
    req = _put()
    with pytest.raises(SignatureDoesNotMatch):
        verify(_with_headers(req, **change), signing_time(req))


def test_tampered_path_method_and_query() -> None:
    req = _put()
    now = signing_time(req)
    for other in (
        SignedRequest(req.method, req.raw_path + "x", req.raw_query, req.headers),
        SignedRequest("POST", req.raw_path, req.raw_query, req.headers),
        SignedRequest(req.method, req.raw_path, "acl", req.headers),
    ):
        with pytest.raises(SignatureDoesNotMatch):
            verify(other, now)


def test_host_from_the_connection_when_no_host_header() -> None:
    req = _put()
    host = CIMultiDict(req.headers)["Host"]
    no_host = _with_headers(req, host=None)
    check(SignedRequest(no_host.method, no_host.raw_path, no_host.raw_query, no_host.headers, host=host))
    with pytest.raises(SignatureDoesNotMatch):
        verify(no_host, signing_time(req))


def test_unsigned_amz_header_refused() -> None:
    req = _put()
    with pytest.raises(AccessDenied, match="not signed") as info:
        verify(_with_headers(req, x_amz_acl="public-read"), signing_time(req))
    assert info.value.fields["HeadersNotSigned"] == "x-amz-acl"


@pytest.mark.parametrize("minutes", [-16, 16, 60 * 24])
def test_clock_skew(minutes: int) -> None:
    req = _put()
    lookup = Lookup()
    with pytest.raises(RequestTimeTooSkewed) as info:
        verify(req, signing_time(req) + timedelta(minutes=minutes), lookup)
    assert info.value.status == 403 and lookup.calls == []


@pytest.mark.parametrize("minutes", [-14, 14])
def test_clock_skew_within_tolerance(minutes: int) -> None:
    req = _put()
    check(req, signing_time(req) + timedelta(minutes=minutes))


def test_missing_content_sha256() -> None:
    req = _put()
    with pytest.raises(InvalidRequest, match="x-amz-content-sha256"):
        verify(_with_headers(req, x_amz_content_sha256=None), signing_time(req))


@pytest.mark.parametrize("value", ["abc", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "unsigned-payload", "g" * 64])
def test_invalid_content_sha256(value: str) -> None:
    req = _put()
    with pytest.raises(InvalidArgument, match="x-amz-content-sha256"):
        verify(_with_headers(req, x_amz_content_sha256=value), signing_time(req))


def test_missing_date() -> None:
    req = _put()
    with pytest.raises(AccessDenied, match="Date or x-amz-date"):
        verify(_with_headers(req, x_amz_date=None), signing_time(req))
    with pytest.raises(AccessDenied, match="Date or x-amz-date"):
        verify(_with_headers(req, x_amz_date="2013-05-24T00:00:00Z"), signing_time(req))


def _auth(req: SignedRequest, value: str) -> SignedRequest:
    return _with_headers(req, authorization=value)


@pytest.mark.parametrize(("value", "error"), [
    ("Bearer token", InvalidArgument),
    ("AWS4-HMAC-SHA512 Credential=x", InvalidArgument),
    ("AWS4-HMAC-SHA256", AuthorizationHeaderMalformed),
    ("AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request", AuthorizationHeaderMalformed),
    ("AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab, "
     "Signature=ab", AuthorizationHeaderMalformed),
    ("AWS4-HMAC-SHA256 Credential=AK/2013/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab",
     AuthorizationHeaderMalformed),
    ("AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=ab",
     AuthorizationHeaderMalformed),
    ("AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws5_request, SignedHeaders=host, Signature=ab",
     AuthorizationHeaderMalformed),
    ("AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=, Signature=ab",
     AuthorizationHeaderMalformed),
    ("AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;;x, Signature=ab",
     AuthorizationHeaderMalformed),
    ("AWS nocolon", InvalidArgument),
    ("AWS :sig", InvalidArgument),
])
def test_malformed_authorization(value: str, error: type[S3Error]) -> None:
    req = _put()
    lookup = Lookup()
    with pytest.raises(error):
        verify(_auth(req, value), signing_time(req), lookup)
    assert lookup.calls == []


def test_credential_date_must_match_request_date() -> None:
    req = _put()
    value = CIMultiDict(req.headers)["Authorization"].replace("/20", "/19", 1)
    with pytest.raises(AuthorizationHeaderMalformed, match="Invalid credential date"):
        verify(_auth(req, value), signing_time(req))


def test_signed_header_list_without_host() -> None:
    req = _put()
    value = CIMultiDict(req.headers)["Authorization"].replace(";host;", ";")
    with pytest.raises(AccessDenied, match="not signed"):
        verify(_auth(req, value), signing_time(req))


def test_two_auth_mechanisms_refused() -> None:
    req = _put()
    both = SignedRequest(req.method, req.raw_path, "X-Amz-Algorithm=AWS4-HMAC-SHA256", req.headers)
    with pytest.raises(InvalidArgument, match="Only one auth mechanism"):
        verify(both, signing_time(req))


def test_anonymous_request() -> None:
    assert verify(from_url("GET", f"{ENDPOINT}/b/k?versionId=1&Expires=3"), datetime.now(UTC)) is None
    assert verify(SignedRequest("GET", "/", "", {}), datetime.now(UTC)) is None


def _presigned(expires: int = 60) -> SignedRequest:
    client = boto_client(signature_version="s3v4")
    return from_url("GET", client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"},
                                                         ExpiresIn=expires))


def _query_without(req: SignedRequest, name: str, replacement: str | None = None) -> SignedRequest:
    items = [item for item in req.raw_query.split("&") if not item.startswith(name + "=")]
    if replacement is not None:
        items.append(f"{name}={replacement}")
    return SignedRequest(req.method, req.raw_path, "&".join(items), req.headers)


@pytest.mark.parametrize("name", ["X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders",
                                  "X-Amz-Expires", "X-Amz-Algorithm"])
def test_presigned_missing_parameter(name: str) -> None:
    req = _presigned()
    with pytest.raises(AuthorizationQueryParametersError):
        verify(_query_without(req, name), signing_time(req))


@pytest.mark.parametrize(("name", "value"), [
    ("X-Amz-Expires", "604801"), ("X-Amz-Expires", "0"), ("X-Amz-Expires", "-1"), ("X-Amz-Expires", "1e3"),
    ("X-Amz-Date", "2013-05-24"), ("X-Amz-Algorithm", "AWS4-HMAC-SHA1"),
    ("X-Amz-Credential", "AK%2F20130524%2Fus-east-1%2Fs3"),
])
def test_presigned_bad_parameter(name: str, value: str) -> None:
    req = _presigned()
    with pytest.raises(AuthorizationQueryParametersError):
        verify(_query_without(req, name, value), signing_time(req))


def test_presigned_week_is_the_limit() -> None:
    req = _presigned(604800)
    check(req, signing_time(req) + timedelta(days=7))
    with pytest.raises(AccessDenied, match="expired"):
        verify(req, signing_time(req) + timedelta(days=7, seconds=1))


def test_presigned_repeated_parameter() -> None:
    req = _presigned()
    doubled = SignedRequest(req.method, req.raw_path, req.raw_query + "&X-Amz-Signature=00", req.headers)
    with pytest.raises(AuthorizationQueryParametersError):
        verify(doubled, signing_time(req))


def test_presigned_tampered_query() -> None:
    req = _presigned()
    with pytest.raises(SignatureDoesNotMatch):
        verify(SignedRequest(req.method, req.raw_path, req.raw_query + "&versionId=2", req.headers), signing_time(req))
    with pytest.raises(AccessDenied, match="not signed"):
        verify(_with_headers(req, x_amz_copy_source="b/other"), signing_time(req))


def test_presigned_ignores_skew_but_not_expiry() -> None:
    req = _presigned(3600)
    check(req, signing_time(req) + timedelta(minutes=59))


def test_sigv2_wrong_secret_and_skew() -> None:
    req = to_signed(sent(lambda: boto_client(signature_version="s3").get_object(Bucket="b", Key="k")))
    with pytest.raises(SignatureDoesNotMatch):
        verify(req, signing_time(req), Lookup({AK: "other"}))
    with pytest.raises(RequestTimeTooSkewed):
        verify(req, signing_time(req) + timedelta(minutes=20))


def test_sigv2_query_missing_and_bad_expires() -> None:
    with pytest.raises(AccessDenied, match="requires the Signature"):
        verify(from_url("GET", f"{ENDPOINT}/b/k?AWSAccessKeyId={AK}&Signature=x"), datetime.now(UTC))
    with pytest.raises(AccessDenied, match="Invalid date"):
        verify(from_url("GET", f"{ENDPOINT}/b/k?AWSAccessKeyId={AK}&Signature=x&Expires=soon"), datetime.now(UTC))


# --- canonicalisation details ---------------------------------------------------------------


def test_query_decoding_is_s3s() -> None:
    assert parse_query("a=1&b&c=&a=2&d=x+y%2Bz&&e=%ZZ") == [
        ("a", "1"), ("b", ""), ("c", ""), ("a", "2"), ("d", "x y+z"), ("e", "%ZZ")
    ]
    assert canonical_query_string("b=2&a=2&a=1&c&d=x+y%2bz%7e") == "a=1&a=2&b=2&c=&d=x%20y%2Bz~"
    assert canonical_query_string("X-Amz-Signature=1&x=%2F", exclude="X-Amz-Signature") == "x=%2F"


def test_canonical_uri_is_single_encoded_and_unnormalised() -> None:
    assert canonical_uri("/b/a b/ü/../x//y") == "/b/a%20b/%C3%BC/../x//y"
    assert canonical_uri("/b/%7Etilde%2b+") == "/b/~tilde%2B%2B"
    assert canonical_uri("") == "/"


def test_signing_key_cache_is_used() -> None:
    req = _put()
    now = signing_time(req)
    check(req, now)
    before = derive_signing_key.cache_info().hits
    check(req, now)
    assert derive_signing_key.cache_info().hits > before
    assert derive_signing_key.cache_info().maxsize is not None


# --- the client-side signer -------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    f"{ENDPOINT}/admin/users?name=a%20b&flag",
    "https://Node1.local/admin/v1/status",
    "http://[::1]:8080/b/%C3%BC?prefix=a+b",
    "http://127.0.0.1:80/x",
])
def test_client_signer_round_trip(url: str) -> None:
    body = b'{"user":"x"}'
    digest = hashlib.sha256(body).hexdigest()
    added = sign_headers("POST", url, {"Content-Type": "application/json", "User-Agent": "edgestore"},
                         digest, AK, SECRET, now=DOC_TIME)
    assert set(added) == {"x-amz-date", "x-amz-content-sha256", "authorization"}
    host = {"https://Node1.local/admin/v1/status": "node1.local", "http://127.0.0.1:80/x": "127.0.0.1"}.get(
        url, urlsplit(url).netloc)
    req = from_url("POST", url, {"Host": host, "Content-Type": "application/json", "User-Agent": "other", **added})
    result = check(req, DOC_TIME)
    assert result.content_sha256 == digest


def test_client_signer_matches_botocore() -> None:
    request = AWSRequest(method="GET", url=f"{ENDPOINT}/b/some%20key?list-type=2&prefix=a%2Fb",
                         headers={"x-amz-meta-x": "1"})
    S3SigV4Auth(CREDENTIALS, "s3", "us-east-1").add_auth(request)
    now = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sign_headers("GET", request.url, {"x-amz-meta-x": "1"}, EMPTY_SHA256, AK, SECRET, now=now)
    assert ours["authorization"] == request.headers["Authorization"]


def test_client_signer_imports_no_aiohttp() -> None:
    code = "import sys, edgestore.sigv4_client; sys.exit('aiohttp' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- malformed input never escapes as anything but an S3Error --------------------------------

_V4_PIECES = st.sampled_from([
    "Credential=AK/20130524/us-east-1/s3/aws4_request", "SignedHeaders=host;x-amz-date;x-amz-content-sha256",
    "Signature=" + "0" * 64, "Credential=", "SignedHeaders=", "=", "", " ", "Credential=/////",
    "Credential=AK/99999999/r/s3/aws4_request",
])
_AUTH_VALUES = st.one_of(
    st.text(max_size=80),
    st.builds(lambda s: "AWS4-HMAC-SHA256 " + s, st.text(max_size=80)),
    st.builds(lambda s: "AWS " + s, st.text(max_size=40)),
    st.builds(lambda parts: "AWS4-HMAC-SHA256 " + ",".join(parts),
              st.lists(st.one_of(_V4_PIECES, st.text(max_size=20)), max_size=5)),
)
_DATES = st.one_of(st.just("20130524T000000Z"), st.just("99991231T235959Z"), st.just("00010101T000000Z"),
                   st.text(max_size=20))
_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fuzz_verify(req: SignedRequest) -> None:
    try:
        result = verify(req, DOC_TIME, Lookup({"AK": SECRET, AK: SECRET}))
    except S3Error:
        return
    assert result is None or isinstance(result, AuthResult)


@_FUZZ
@given(auth=_AUTH_VALUES, date=_DATES, content=st.one_of(st.just(EMPTY_SHA256), st.text(max_size=70)),
       http_date=st.one_of(st.none(), st.text(max_size=40), st.just("Fri, 24 May 2013 00:00:00 GMT")))
def test_fuzz_authorization_header(auth: str, date: str, content: str, http_date: str | None) -> None:
    headers = [("Host", DOC_HOST), ("Authorization", auth), ("x-amz-date", date), ("x-amz-content-sha256", content)]
    if http_date is not None:
        headers.append(("Date", http_date))
    _fuzz_verify(SignedRequest("GET", "/k", "", headers_of(headers)))


_QUERY_NAMES = st.sampled_from(["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                                "X-Amz-SignedHeaders", "X-Amz-Signature", "AWSAccessKeyId", "Signature",
                                "Expires", "acl", ""])
_QUERY_VALUES = st.one_of(st.text(max_size=30), st.sampled_from(
    ["AWS4-HMAC-SHA256", "AK%2F20130524%2Fus-east-1%2Fs3%2Faws4_request", "20130524T000000Z", "86400",
     "host", "9" * 30, "0" * 64, "%", "%FF%FE", "+", "AK"]))


@_FUZZ
@given(pairs=st.lists(st.tuples(_QUERY_NAMES, _QUERY_VALUES), max_size=8), path=st.text(max_size=30))
def test_fuzz_query_and_path(pairs: list[tuple[str, str]], path: str) -> None:
    query = "&".join(f"{name}={value}" for name, value in pairs)
    _fuzz_verify(SignedRequest("GET", path, query, headers_of({"Host": DOC_HOST})))


@_FUZZ
@given(path=st.text(max_size=40), query=st.text(max_size=40),
       extra=st.lists(st.tuples(st.sampled_from(["x-amz-date", "x-amz-meta-a", "host", "range", "X-AMZ-ACL"]),
                                st.text(max_size=30)), max_size=4))
def test_fuzz_around_a_valid_request(path: str, query: str, extra: list[tuple[str, str]]) -> None:
    base = doc_request("GET", "/test.txt", {"Range": "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256,
                                           "x-amz-date": "20130524T000000Z"},
                       "host;range;x-amz-content-sha256;x-amz-date",
                       "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    headers = CIMultiDict(base.headers)
    for name, value in extra:
        headers.add(name, value)
    _fuzz_verify(SignedRequest("GET", path, query, CIMultiDictProxy(headers)))

