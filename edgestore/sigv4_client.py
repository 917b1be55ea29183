"""Client-side AWS SigV4 header signing, for edgestore's own CLI calling the admin API.

It reuses the canonicalisation of the server's verifier (``edgestore.api.s3.sigv4``), so
what the CLI signs is by construction what the server checks. It only computes headers
and imports no HTTP library: any client (aiohttp, urllib) can send them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from edgestore.api.s3.sigv4 import (
    ALGORITHM,
    AMZ_DATE_FORMAT,
    canonical_header_value,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    derive_signing_key,
    hmac_sha256_hex,
    string_to_sign,
)

__all__ = ["sign_headers"]

# Headers a proxy or the HTTP library may add, drop or rewrite: never signed (as botocore).
_UNSIGNED = frozenset(
    {
        "authorization", "connection", "expect", "keep-alive", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    }
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _host(url: str) -> str:
    """The Host header an HTTP client sends for ``url``: no userinfo, no default port."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2].lower()
    host, sep, port = netloc.rpartition(":")
    if sep and "]" not in port and _DEFAULT_PORTS.get(parts.scheme) == port:
        return host
    return netloc


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body_sha256_hex: str,
    access_key: str,
    secret_key: str,
    region: str = "us-east-1",
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers to add to a request so that it carries a SigV4 ``Authorization``.

    ``url`` is the full URL as it will be sent, path and query percent-encoded; its path
    is signed in the canonical form (decoded once, re-encoded with the unreserved set),
    which is what the server accepts whether or not the wire path matches it byte for
    byte. ``headers`` are the request headers the caller will send (all are signed but
    hop-by-hop ones and ``user-agent``); ``Host`` is taken from it or derived from ``url``
    as HTTP clients derive it. ``body_sha256_hex`` is the hex SHA-256 of the body (or
    ``UNSIGNED-PAYLOAD``). Returns ``x-amz-date``, ``x-amz-content-sha256`` and
    ``authorization``; the request must be sent within 15 minutes of ``now``.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date = moment.strftime(AMZ_DATE_FORMAT)
    added = {"x-amz-date": amz_date, "x-amz-content-sha256": body_sha256_hex}
    to_sign: dict[str, list[str]] = {}
    for name, value in headers.items():
        lname = name.lower()
        if lname not in _UNSIGNED and lname not in added:
            to_sign.setdefault(lname, []).append(value)
    to_sign.setdefault("host", [_host(url)])
    for name, value in added.items():
        to_sign[name] = [value]
    names = sorted(to_sign)
    signed_headers = ";".join(names)
    parts = urlsplit(url)
    creq = canonical_request(
        method.upper(),
        canonical_uri(parts.path),
        canonical_query_string(parts.query),
        [(name, canonical_header_value(to_sign[name])) for name in names],
        signed_headers,
        body_sha256_hex,
    )
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    key = derive_signing_key(secret_key, amz_date[:8], region)
    signature = hmac_sha256_hex(key, string_to_sign(amz_date, scope, creq))
    authorization = (
        f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
    return {**added, "authorization": authorization}
