"""S3 request authentication: AWS Signature Version 4 and 2, in headers and in query strings.

Framework-neutral and pure: a ``SignedRequest`` (method, path and query exactly as on the
wire, headers) and a secret lookup go in; an ``AuthResult`` comes out, ``None`` for an
anonymous request (the caller decides whether that is allowed), or an ``S3Error``
subclass is raised -- never another exception type for malformed input. The
canonical-request primitives are shared with the client-side signer
(``edgestore/sigv4_client.py``) so the two cannot drift apart.

S3 specifics this follows (AWS docs, checked against what botocore sends):

- The canonical URI is the path as the client encoded it: S3 does not normalise it (no
  dot-segment removal, ``//`` kept) and encodes it once. botocore sends
  ``quote(key, safe='/~')`` and signs exactly that string. For clients that put a
  differently-encoded path on the wire we also try the spec form (decode, re-encode every
  byte outside ``A-Za-z0-9-._~`` and ``/``). Both forms name the same key, so trying both
  lets no request mean something other than what was signed.
- The canonical query is every ``name=value`` pair, decoded (``+`` is a space, as S3 reads
  query strings) then encoded with the unreserved set, sorted by name then value; a bare
  ``name`` is ``name=``. ``parse_query`` decodes the same way for the router.
- Header values are trimmed and runs of whitespace collapsed; repeated headers are joined
  with ``,``. Every ``x-amz-*`` header present must be signed (AWS answers AccessDenied,
  "There were headers present in the request which were not signed").
- ``x-amz-content-sha256`` is required with header auth and decides the ``PayloadMode``;
  the hex hash of a ``SIGNED`` payload is verified by the body reader, later.
- Clock: header-signed requests must be within 15 minutes of ``now``; presigned URLs use
  their expiry instead (at most 7 days) and may not be dated more than 15 minutes ahead.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

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

__all__ = ["ALGORITHM", "AMZ_DATE_FORMAT", "EMPTY_SHA256", "MAX_PRESIGN_EXPIRES_S", "MAX_SKEW",
    "UNSIGNED_PAYLOAD", "AuthResult", "PayloadMode", "SecretLookup", "SignedRequest",
    "authenticate", "canonical_header_value", "canonical_query_string", "canonical_request",
    "canonical_uri", "derive_signing_key", "hmac_sha256_hex", "parse_query", "payload_mode_of",
    "string_to_sign"]

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES_S = 604800  # seven days, AWS's limit

SecretLookup = Callable[[str], Awaitable[str | None]]
"""Access key -> secret key, or None when the key is unknown."""

_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z\Z")
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}\Z")
_WS_RE = re.compile(r"[ \t\r\n\x0b\x0c]+")
_HEADER_MALFORMED = "The authorization header is malformed; "
_CREDENTIAL_FORM = 'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
_DATE_MISMATCH = "Invalid credential date. Date is not the same as X-Amz-Date."
_NEEDS_DATE = "AWS authentication requires a valid Date or x-amz-date header"


class PayloadMode(enum.Enum):
    """How the body is protected, from ``x-amz-content-sha256``."""

    SIGNED = "SIGNED"  # a hex sha256 the body must match (XAmzContentSHA256Mismatch)
    UNSIGNED = UNSIGNED_PAYLOAD
    STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

    @property
    def is_aws_chunked(self) -> bool:
        """The body is aws-chunked framed and must go through ``chunked.AwsChunkedDecoder``."""
        return self.value.startswith("STREAMING-")

    @property
    def has_chunk_signatures(self) -> bool:
        return self in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER)


def payload_mode_of(value: str) -> PayloadMode:
    """Classify an ``x-amz-content-sha256`` value; InvalidArgument when it is none of them."""
    if _HEX64_RE.match(value):
        return PayloadMode.SIGNED
    for mode in PayloadMode:
        if mode is not PayloadMode.SIGNED and value == mode.value:
            return mode
    raise InvalidArgument(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
        "or a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=value[:256],
    )


@dataclass(frozen=True)
class SignedRequest:
    """What authentication needs of an HTTP request, exactly as it arrived.

    ``raw_path`` is the percent-encoded path without the query; ``raw_query`` the query
    string without ``?``, still encoded (aiohttp: ``request.raw_path`` split at the first
    ``?``, or ``from_target``). ``headers`` is any mapping, names in any case; repeated
    headers are seen through ``.items()`` (aiohttp's multidict yields each). ``host`` is
    used when there is no Host header (HTTP/2). ``host_bucket`` is the bucket named by a
    virtual-hosted-style Host, needed only for SigV2, whose resource is ``/bucket/key``.
    """

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]
    host: str | None = None
    host_bucket: str | None = None

    @classmethod
    def from_target(cls, method: str, target: str, headers: Mapping[str, str],
                    host: str | None = None, host_bucket: str | None = None) -> SignedRequest:
        """Build from the request target (``/path?query``) as on the request line."""
        path, _, query = target.partition("?")
        return cls(method, path, query, headers, host, host_bucket)


@dataclass(frozen=True)
class AuthResult:
    """An authenticated request: who, and how its body must be checked.

    For ``PayloadMode.SIGNED`` the body's sha256 must equal ``content_sha256`` (lower-case
    hex) or the caller answers ``XAmzContentSHA256Mismatch``; ``signing_key``, ``scope``,
    ``seed_signature`` and ``amz_date`` let the aws-chunked decoder verify chunk signatures
    (SigV4 only; empty for SigV2, which signs no payload).
    """

    access_key: str
    payload_mode: PayloadMode
    content_sha256: str
    signing_key: bytes
    scope: str
    seed_signature: str
    amz_date: str
    signature_version: int = 4
    presigned: bool = False

    @property
    def region(self) -> str:
        """The region the client signed for (we accept any)."""
        parts = self.scope.split("/")
        return parts[1] if len(parts) == 4 else ""


# --- shared canonicalisation primitives (also used by edgestore.sigv4_client) ------------


def _b(text: str) -> bytes:
    """UTF-8 bytes of wire text; undecodable bytes that aiohttp kept as surrogates come back."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _qs_unquote(text: str) -> bytes:
    return unquote_to_bytes(_b(text.replace("+", " ")))


def _split_query(raw_query: str) -> list[tuple[str, str, bool]]:
    """Wire pairs in order, still encoded, with whether ``=`` was present; empty items dropped."""
    pairs = []
    for item in raw_query.split("&"):
        if item:
            name, sep, value = item.partition("=")
            pairs.append((name, value, bool(sep)))
    return pairs


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Decoded ``(name, value)`` pairs in wire order, repeated names kept, as S3 reads them.

    ``+`` is a space, ``%XX`` a byte; bytes that are not UTF-8 survive as surrogates.
    """
    return [
        (_qs_unquote(n).decode("utf-8", "surrogateescape"), _qs_unquote(v).decode("utf-8", "surrogateescape"))
        for n, v, _ in _split_query(raw_query)
    ]


def canonical_query_string(raw_query: str, exclude: str | None = None) -> str:
    """The SigV4 canonical query of a wire query string, leaving out parameter ``exclude``."""
    items = []
    for name, value, _ in _split_query(raw_query):
        raw_name = _qs_unquote(name)
        if exclude is not None and raw_name == exclude.encode():
            continue
        items.append((quote(raw_name, safe="~"), quote(_qs_unquote(value), safe="~")))
    items.sort()
    return "&".join(f"{n}={v}" for n, v in items)


def canonical_uri(raw_path: str) -> str:
    """The spec form of a path: decoded once, then every byte but unreserved and ``/`` encoded."""
    return quote(unquote_to_bytes(_b(raw_path or "/")), safe="/~")


def canonical_header_value(values: Sequence[str]) -> str:
    """Trim each value, collapse whitespace runs to one space, join repeats with ``,``."""
    return ",".join(_WS_RE.sub(" ", v).strip(" ") for v in values)


def canonical_request(method: str, uri: str, query: str, headers: Sequence[tuple[str, str]],
                      signed_headers: str, payload_hash: str) -> str:
    """The SigV4 canonical request; ``headers`` are (lower-case name, canonical value) in order."""
    lines = "".join(f"{name}:{value}\n" for name, value in headers)
    return "\n".join((method, uri, query, lines, signed_headers, payload_hash))


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(_b(canonical)).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


@functools.lru_cache(maxsize=256)
def derive_signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    """kSigning = HMAC chain over date, region, service, "aws4_request"; cached (hot path)."""
    key = hmac.new(b"AWS4" + _b(secret), _b(date), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, _b(part), hashlib.sha256).digest()
    return key


def hmac_sha256_hex(key: bytes, message: str) -> str:
    return hmac.new(key, _b(message), hashlib.sha256).hexdigest()


def _same(given: str, computed: str) -> bool:
    """Constant-time comparison of signatures; never raises on odd input."""
    return hmac.compare_digest(_b(given), _b(computed))


# --- request parsing helpers --------------------------------------------------------------


class _Headers:
    """Lower-cased index over any header mapping, keeping repeated headers in order."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._index: dict[str, list[str]] = {}
        for name, value in headers.items():
            self._index.setdefault(name.lower(), []).append(value)

    def all(self, name: str) -> list[str]:
        return self._index.get(name, [])

    def one(self, name: str) -> str | None:
        values = self._index.get(name)
        return values[0] if values else None

    def names(self) -> Iterable[str]:
        return self._index.keys()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_amz_date(value: str) -> datetime | None:
    if not _AMZ_DATE_RE.match(value):
        return None
    try:  # the pattern matched: fixed positions (strptime costs ten times as much)
        return datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                        int(value[11:13]), int(value[13:15]), tzinfo=UTC)
    except ValueError:
        return None


def _parse_http_date(value: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value)
        return _utc(moment) if moment is not None else None
    except (TypeError, ValueError, IndexError, OverflowError):  # year 9999 in a far zone overflows
        return None


def _check_skew(moment: datetime, raw: str, now: datetime) -> None:
    if abs(now - moment) > MAX_SKEW:
        raise RequestTimeTooSkewed(RequestTime=raw, ServerTime=_iso(now), MaxAllowedSkewMilliseconds="900000")


@dataclass(frozen=True)
class _Credential:
    access_key: str
    date: str
    region: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/s3/aws4_request"


def _parse_credential(value: str, error: type[S3Error], prefix: str) -> _Credential:
    parts = value.split("/")
    if len(parts) < 5:
        raise error(prefix + _CREDENTIAL_FORM)
    access_key, (date, region, service, terminal) = "/".join(parts[:-4]), parts[-4:]
    if not access_key or not region or not re.fullmatch(r"\d{8}", date):
        raise error(prefix + _CREDENTIAL_FORM)
    if service != "s3":
        raise error(prefix + f'incorrect service "{service}". This endpoint belongs to "s3".')
    if terminal != "aws4_request":
        raise error(prefix + f'incorrect terminal "{terminal}". This endpoint uses "aws4_request".')
    return _Credential(access_key, date, region)


def _parse_signed_headers(value: str, error: type[S3Error], message: str) -> list[str]:
    names = [n.strip().lower() for n in value.split(";")]
    if not value or any(not n for n in names):
        raise error(message)
    return names


def _check_all_signed(headers: _Headers, signed: Iterable[str], presigned: bool) -> None:
    """AWS refuses x-amz-* headers (and a Host) that the client left out of the signature."""
    signed_set = set(signed)
    unsigned = sorted(
        name
        for name in headers.names()
        if name.startswith("x-amz-")
        and name not in signed_set
        and not (presigned and name == "x-amz-content-sha256")
    )
    if "host" not in signed_set:
        unsigned.insert(0, "host")
    if unsigned:
        raise AccessDenied(
            "There were headers present in the request which were not signed",
            HeadersNotSigned=", ".join(unsigned),
        )


async def _secret(lookup: SecretLookup, access_key: str) -> str:
    secret = await lookup(access_key)
    if secret is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=access_key)
    return secret


def _normal(content_sha256: str, mode: PayloadMode) -> str:
    return content_sha256.lower() if mode is PayloadMode.SIGNED else content_sha256


def _verify_v4(req: SignedRequest, headers: _Headers, key: bytes, amz_date: str, scope: str,
               query: str, signed_names: Sequence[str], signed_headers_raw: str,
               payload_hash: str, given: str) -> str:
    """Recompute the signature for each acceptable canonical URI; return the one that matches."""
    lines = []
    for name in signed_names:
        values = headers.all(name)
        if not values and name == "host" and req.host is not None:
            values = [req.host]
        lines.append((name, canonical_header_value(values)))
    method = req.method.upper()
    for uri in dict.fromkeys((req.raw_path or "/", canonical_uri(req.raw_path))):
        creq = canonical_request(method, uri, query, lines, signed_headers_raw, payload_hash)
        computed = hmac_sha256_hex(key, string_to_sign(amz_date, scope, creq))
        if _same(given.lower(), computed):
            return computed
    raise SignatureDoesNotMatch(SignatureProvided=given[:128])


# --- SigV4, Authorization header --------------------------------------------------------


def _parse_v4_header(value: str) -> tuple[_Credential, list[str], str, str]:
    parts: dict[str, str] = {}
    for item in value.split(","):
        name, sep, val = item.strip().partition("=")
        if not name and not sep:
            continue
        if not sep or name.strip() in parts:
            raise AuthorizationHeaderMalformed()
        parts[name.strip()] = val.strip()
    if set(parts) != {"Credential", "SignedHeaders", "Signature"}:
        raise AuthorizationHeaderMalformed(
            _HEADER_MALFORMED + "the authorization header requires three components: "
            "Credential, SignedHeaders, and Signature."
        )
    credential = _parse_credential(parts["Credential"], AuthorizationHeaderMalformed, _HEADER_MALFORMED)
    names = _parse_signed_headers(parts["SignedHeaders"], AuthorizationHeaderMalformed,
                                  _HEADER_MALFORMED + "SignedHeaders is empty or malformed.")
    return credential, names, parts["SignedHeaders"], parts["Signature"]


async def _v4_header(req: SignedRequest, headers: _Headers, rest: str, lookup: SecretLookup,
                     now: datetime) -> AuthResult:
    credential, names, signed_raw, given = _parse_v4_header(rest)
    content = headers.one("x-amz-content-sha256")
    if content is None:
        raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
    content = content.strip()
    mode = payload_mode_of(content)
    raw_date = headers.one("x-amz-date")
    if raw_date is not None:
        amz_date = raw_date.strip()
        moment = _parse_amz_date(amz_date)
    else:
        raw_date = headers.one("date")
        moment = _parse_http_date(raw_date) if raw_date is not None else None
        amz_date = moment.strftime(AMZ_DATE_FORMAT) if moment is not None else ""
    if moment is None or raw_date is None:
        raise AccessDenied(_NEEDS_DATE)
    _check_skew(moment, raw_date, now)
    if credential.date != amz_date[:8]:
        raise AuthorizationHeaderMalformed(_HEADER_MALFORMED + _DATE_MISMATCH)
    _check_all_signed(headers, names, presigned=False)
    secret = await _secret(lookup, credential.access_key)
    key = derive_signing_key(secret, credential.date, credential.region)
    query = canonical_query_string(req.raw_query)
    seed = _verify_v4(req, headers, key, amz_date, credential.scope, query, names, signed_raw, content, given)
    return AuthResult(credential.access_key, mode, _normal(content, mode), key, credential.scope, seed, amz_date)


# --- SigV4, presigned query ---------------------------------------------------------------

_V4_QUERY_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                    "X-Amz-SignedHeaders", "X-Amz-Expires")
_QUERY_PREFIX = "Error parsing the X-Amz-Credential parameter; "


def _auth_params(req: SignedRequest, wanted: Iterable[str], error: type[S3Error]) -> dict[str, str]:
    """The decoded values of the named auth parameters; each may appear at most once."""
    wanted_set = set(wanted)
    found: dict[str, str] = {}
    for name, value in parse_query(req.raw_query):
        if name in wanted_set:
            if name in found:
                raise error(f"Query-string authentication: {name} must appear only once.")
            found[name] = value
    return found


async def _v4_query(req: SignedRequest, headers: _Headers, lookup: SecretLookup, now: datetime) -> AuthResult:
    params = _auth_params(req, _V4_QUERY_PARAMS, AuthorizationQueryParametersError)
    if any(name not in params for name in _V4_QUERY_PARAMS):
        raise AuthorizationQueryParametersError(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise AuthorizationQueryParametersError('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    credential = _parse_credential(params["X-Amz-Credential"], AuthorizationQueryParametersError, _QUERY_PREFIX)
    amz_date = params["X-Amz-Date"]
    moment = _parse_amz_date(amz_date)
    if moment is None:
        raise AuthorizationQueryParametersError(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    if credential.date != amz_date[:8]:
        raise AuthorizationQueryParametersError(_QUERY_PREFIX + _DATE_MISMATCH)
    raw_expires = params["X-Amz-Expires"]
    if not re.fullmatch(r"[0-9]{1,7}", raw_expires):
        raise AuthorizationQueryParametersError("X-Amz-Expires should be a number")
    expires_s = int(raw_expires)
    if not 1 <= expires_s <= MAX_PRESIGN_EXPIRES_S:
        raise AuthorizationQueryParametersError("X-Amz-Expires must be less than a week (in seconds) that is 604800")
    if moment - now > MAX_SKEW:
        raise AccessDenied("Request is not yet valid", **{"X-Amz-Date": amz_date, "ServerTime": _iso(now)})
    if now - moment > timedelta(seconds=expires_s):
        expired_at = _iso(moment + timedelta(seconds=expires_s))
        raise AccessDenied("Request has expired", **{"X-Amz-Expires": raw_expires, "Expires": expired_at,
                                                     "ServerTime": _iso(now)})
    names = _parse_signed_headers(params["X-Amz-SignedHeaders"], AuthorizationQueryParametersError,
                                  "X-Amz-SignedHeaders is malformed.")
    _check_all_signed(headers, names, presigned=True)
    content = headers.one("x-amz-content-sha256")
    content = content.strip() if content is not None else UNSIGNED_PAYLOAD
    mode = payload_mode_of(content)
    payload_hash = content if "x-amz-content-sha256" in names else UNSIGNED_PAYLOAD
    secret = await _secret(lookup, credential.access_key)
    key = derive_signing_key(secret, credential.date, credential.region)
    query = canonical_query_string(req.raw_query, exclude="X-Amz-Signature")
    seed = _verify_v4(req, headers, key, amz_date, credential.scope, query, names,
                      params["X-Amz-SignedHeaders"], payload_hash, params["X-Amz-Signature"])
    return AuthResult(credential.access_key, mode, _normal(content, mode), key, credential.scope, seed, amz_date,
                      presigned=True)


# --- SigV2 ----------------------------------------------------------------------------------

# Query parameters that are part of the SigV2 resource: AWS's documented sub-resources and
# response overrides, plus those botocore's HmacV1Auth signs.
_V2_SUBRESOURCES = frozenset({
    "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete", "inventory", "lifecycle",
    "location", "logging", "metrics", "notification", "object-lock", "partNumber", "policy", "replication",
    "requestPayment", "restore", "select", "select-type", "storageClass", "tagging", "torrent", "uploadId",
    "uploads", "versionId", "versioning", "versions", "website", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "response-content-language",
    "response-content-type", "response-expires"})


def _v2_resources(req: SignedRequest) -> list[str]:
    """Candidate CanonicalizedResource strings: wire path, then its spec encoding."""
    subs = []
    for name, value, has_eq in _split_query(req.raw_query):
        key = _qs_unquote(name).decode("utf-8", "surrogateescape")
        if key in _V2_SUBRESOURCES:
            val = _qs_unquote(value).decode("utf-8", "surrogateescape")
            subs.append((key, f"{key}={val}" if has_eq else key))
    subs.sort(key=lambda item: item[0])
    suffix = "?" + "&".join(s for _, s in subs) if subs else ""
    prefix = "/" + req.host_bucket if req.host_bucket else ""
    paths = [req.raw_path or "/", canonical_uri(req.raw_path)]
    if not prefix and paths[0].count("/") == 1 and len(paths[0]) > 1:
        paths.insert(0, paths[0] + "/")  # a bucket's resource is "/bucket/" (botocore, AWS docs)
    return [prefix + path + suffix for path in dict.fromkeys(paths)]


def _v2_string_to_sign(req: SignedRequest, headers: _Headers, date_line: str, resource: str) -> str:
    """Verb, Content-MD5, Content-Type, date, x-amz-* headers (sorted, repeats joined), resource."""
    lines = [req.method.upper(), (headers.one("content-md5") or "").strip(),
             (headers.one("content-type") or "").strip(), date_line]
    lines += [f"{name}:{','.join(v.strip() for v in headers.all(name))}"
              for name in sorted(headers.names()) if name.startswith("x-amz-")]
    return "\n".join(lines) + "\n" + resource


def _verify_v2(req: SignedRequest, headers: _Headers, secret: str, date_line: str, given: str) -> None:
    for resource in _v2_resources(req):
        sts = _v2_string_to_sign(req, headers, date_line, resource)
        computed = base64.b64encode(hmac.new(_b(secret), _b(sts), hashlib.sha1).digest()).decode()
        if _same(given, computed):
            return
    raise SignatureDoesNotMatch(SignatureProvided=given[:128])


def _v2_result(access_key: str, signature: str, presigned: bool) -> AuthResult:
    return AuthResult(access_key, PayloadMode.UNSIGNED, UNSIGNED_PAYLOAD, b"", "", signature, "",
                      signature_version=2, presigned=presigned)


async def _v2_header(req: SignedRequest, headers: _Headers, rest: str, lookup: SecretLookup,
                     now: datetime) -> AuthResult:
    access_key, sep, given = rest.strip().partition(":")
    if not sep or not access_key or not given:
        raise InvalidArgument("AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
                              ArgumentName="Authorization", ArgumentValue=("AWS " + rest)[:256])
    raw_date = headers.one("x-amz-date")
    date_line = ""
    if raw_date is not None:
        moment = _parse_http_date(raw_date) or _parse_amz_date(raw_date.strip())
    else:
        raw_date = headers.one("date")
        moment = _parse_http_date(raw_date) if raw_date is not None else None
        date_line = (raw_date or "").strip()
    if moment is None or raw_date is None:
        raise AccessDenied(_NEEDS_DATE)
    _check_skew(moment, raw_date, now)
    secret = await _secret(lookup, access_key)
    _verify_v2(req, headers, secret, date_line, given)
    return _v2_result(access_key, given, presigned=False)


async def _v2_query(req: SignedRequest, headers: _Headers, lookup: SecretLookup, now: datetime) -> AuthResult:
    params = _auth_params(req, ("AWSAccessKeyId", "Signature", "Expires"), AccessDenied)
    if len(params) != 3:
        raise AccessDenied("Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters")
    raw_expires = params["Expires"]
    if not re.fullmatch(r"[0-9]{1,12}", raw_expires):
        raise AccessDenied(f"Invalid date (should be seconds since epoch): {raw_expires[:64]}")
    if int(now.timestamp()) > int(raw_expires):
        expired_at = _iso(datetime.fromtimestamp(int(raw_expires), UTC))
        raise AccessDenied("Request has expired", Expires=expired_at, ServerTime=_iso(now))
    given = params["Signature"].replace(" ", "+")  # a raw '+' in the URL decodes as a space
    secret = await _secret(lookup, params["AWSAccessKeyId"])
    _verify_v2(req, headers, secret, raw_expires, given)
    return _v2_result(params["AWSAccessKeyId"], given, presigned=True)


# --- entry point ----------------------------------------------------------------------------


async def authenticate(req: SignedRequest, secret_lookup: SecretLookup, now: datetime) -> AuthResult | None:
    """Authenticate ``req`` with whichever AWS scheme it uses, at time ``now`` (naive = UTC).

    Returns None when the request carries no credentials at all (no Authorization header,
    no ``X-Amz-Algorithm``/``X-Amz-Credential``/``X-Amz-Signature``, no
    ``AWSAccessKeyId``/``Signature`` query parameter). Raises an ``S3Error`` subclass for
    anything else that does not verify. ``secret_lookup`` is awaited at most once, after the
    cheap syntax and clock checks, and its own exceptions propagate unchanged.
    """
    now = _utc(now)
    headers = _Headers(req.headers)
    names = {name for name, _ in parse_query(req.raw_query)}
    v4_query = bool(names & {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"})
    v2_query = bool(names & {"AWSAccessKeyId", "Signature"})
    authorization = headers.all("authorization")
    if (bool(authorization) + v4_query + v2_query) > 1:
        raise InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
            "query string parameter or the Authorization header should be specified",
            ArgumentName="Authorization",
        )
    if authorization:
        if len(authorization) > 1:
            raise AuthorizationHeaderMalformed(_HEADER_MALFORMED + "more than one Authorization header.")
        scheme, _, rest = authorization[0].strip().partition(" ")
        if scheme == ALGORITHM:
            return await _v4_header(req, headers, rest, secret_lookup, now)
        if scheme == "AWS":
            return await _v2_header(req, headers, rest, secret_lookup, now)
        raise InvalidArgument("Unsupported Authorization Type", ArgumentName="Authorization",
                              ArgumentValue=authorization[0][:256])
    if v4_query:
        return await _v4_query(req, headers, secret_lookup, now)
    if v2_query:
        return await _v2_query(req, headers, secret_lookup, now)
    return None
