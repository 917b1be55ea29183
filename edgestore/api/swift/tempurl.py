"""Temporary URLs (Swift's tempurl middleware): access to one object, or to the objects
under a prefix, for whoever holds the URL until it expires — no token needed.

Query: temp_url_sig, temp_url_expires (Unix seconds or YYYY-MM-DDThh:mm:ssZ), optional
temp_url_prefix, temp_url_ip_range, filename, inline. The signature is an HMAC, keyed
with one of the account's (X-Account-Meta-Temp-URL-Key[-2]: the whole account) or the
container's (X-Container-Meta-Temp-URL-Key[-2]: that container only) keys, over
"METHOD\\nexpires\\npath", where path is /v1/AUTH_acct/cont/obj, or
"prefix:/v1/AUTH_acct/cont/<prefix>" for a prefix URL, and the line "ip=<range>" comes
first when the URL is bound to client addresses. It is sent as hex (sha1 or sha256, told
apart by length) or as "<digest>:<base64>" (sha1, sha256, sha512). A HEAD is allowed
by a signature for HEAD, GET, POST or PUT. Anything wrong is 401.

Answers to a temp URL drop X-Object-Meta-* (except X-Object-Meta-Public-*) and, for
GET/HEAD, carry Content-Disposition (attachment named after the object, or `filename`,
or inline) and an Expires of the URL's expiry.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import ipaddress
import posixpath
import time
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import quote

from aiohttp import web

from edgestore.api.swift.authorize import Caller
from edgestore.api.swift.context import RESELLER_PREFIX, SwiftServices
from edgestore.api.swift.errors import SwiftError

__all__ = ["METHODS", "ALLOWED_DIGESTS", "capabilities", "temp_url_caller", "on_response_prepare"]

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
ALLOWED_DIGESTS = ("sha1", "sha256", "sha512")
_HEX_DIGESTS = {40: "sha1", 64: "sha256"}
_HEAD_SIGNED_AS = ("HEAD", "GET", "POST", "PUT")
_KEY_NAMES = ("temp-url-key", "temp-url-key-2")
# Headers that would let an upload point at data the URL does not grant (a DLO manifest,
# a symlink).
_DISALLOWED_HEADERS = ("X-Object-Manifest", "X-Symlink-Target")
_OUTGOING_REMOVE, _OUTGOING_ALLOW = "x-object-meta-", "x-object-meta-public-"
_ISO8601 = "%Y-%m-%dT%H:%M:%SZ"
_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_REQUEST_KEY = "edgestore.swift.tempurl"


def capabilities() -> dict[str, object]:
    return {"methods": list(METHODS), "incoming_remove_headers": ["x-timestamp"], "incoming_allow_headers": [],
            "outgoing_remove_headers": [_OUTGOING_REMOVE + "*"], "outgoing_allow_headers": [_OUTGOING_ALLOW + "*"],
            "allowed_digests": list(ALLOWED_DIGESTS)}


@dataclass(frozen=True)
class _Answer:
    """What the response needs from the URL."""
    expires: int
    filename: str | None
    inline: bool
    obj: str


def _invalid() -> SwiftError:
    return SwiftError(401, "401 Unauthorized: Temp URL invalid\n")


def _expires(raw: str, now: float) -> int:
    try:
        expires = int(raw)
    except ValueError:
        try:
            expires = calendar.timegm(time.strptime(raw, _ISO8601))
        except ValueError:
            raise _invalid() from None
    if expires < now:
        raise _invalid()
    return expires


def _signature(sig: str) -> tuple[str, str]:
    """(digest name, hex signature) from the query's form of it."""
    if ":" in sig:
        digest, _, encoded = sig.partition(":")
        if ("-" in encoded or "_" in encoded) and not ("+" in encoded or "/" in encoded):
            encoded = encoded.replace("-", "+").replace("_", "/")
        stripped = encoded.rstrip("=").encode()
        if not stripped or not set(stripped) <= _B64_CHARS or len(stripped) % 4 == 1:
            raise _invalid()
        try:
            raw = base64.b64decode(stripped + b"=" * (-len(stripped) % 4))
        except (binascii.Error, ValueError):
            raise _invalid() from None
        hex_sig = raw.hex()
    elif len(sig) in _HEX_DIGESTS:
        digest, hex_sig = _HEX_DIGESTS[len(sig)], sig
    else:
        raise _invalid()
    if digest not in ALLOWED_DIGESTS:
        raise _invalid()
    return digest, hex_sig


def _client_in_range(http: web.Request, ip_range: str) -> bool:
    try:
        return http.remote is not None and ipaddress.ip_address(http.remote) in ipaddress.ip_network(ip_range)
    except ValueError:
        return False


async def _scoped_keys(services: SwiftServices, account: str, container: str) -> list[tuple[str, str]]:
    """(key, scope) pairs: scope "" for account keys, the container's name for its keys."""
    account_meta = (await services.accounts.get(account)).meta
    keys = [(account_meta[name], "") for name in _KEY_NAMES if account_meta.get(name)]
    bucket = await services.buckets.lookup(container)
    if bucket is not None and bucket.account == account:
        keys += [(bucket.meta[name], container) for name in _KEY_NAMES if bucket.meta.get(name)]
    return keys


async def temp_url_caller(http: web.Request, services: SwiftServices, account: str, container: str | None,
                          obj: str | None, query: dict[str, str]) -> Caller | None:
    """The caller a valid temp URL stands for; None when the request is not a temp URL.
    Raises 401 for a temp URL that does not hold (400 for a header it may not carry)."""
    sig, raw_expires = query.get("temp_url_sig"), query.get("temp_url_expires")
    if sig is None and raw_expires is None:
        return None
    if not sig or not raw_expires:
        raise _invalid()
    expires = _expires(raw_expires, time.time())
    digest, hex_sig = _signature(sig)
    if http.method not in METHODS or container is None or obj is None:
        raise _invalid()
    ip_range = query.get("temp_url_ip_range")
    if ip_range is not None and not _client_in_range(http, ip_range):
        raise _invalid()
    prefix = query.get("temp_url_prefix")
    base = f"/v1/{RESELLER_PREFIX}{account}/{container}/"
    if prefix is None:
        path = base + obj
    elif obj.startswith(prefix):
        path = f"prefix:{base}{prefix}"
    else:
        raise _invalid()
    methods = _HEAD_SIGNED_AS if http.method == "HEAD" else (http.method,)
    scope = None
    for key, key_scope in await _scoped_keys(services, account, container):
        for method in methods:
            body = f"{method}\n{expires}\n{path}"
            if ip_range is not None:
                body = f"ip={ip_range}\n{body}"
            expected = hmac.new(key.encode(), body.encode(), getattr(hashlib, digest)).hexdigest()
            if scope is None and hmac.compare_digest(expected, hex_sig):
                scope = key_scope  # the first key that signs it: the account's come first
    if scope is None:
        raise _invalid()
    if http.method not in ("GET", "HEAD"):
        for header in _DISALLOWED_HEADERS:
            if header in http.headers:
                raise SwiftError(400, f"The header {header!r} is not allowed in this tempurl")
    http[_REQUEST_KEY] = _Answer(expires, query.get("filename"), "inline" in query, obj)
    return Caller(None, temp_url_scope=scope)


def _disposition(kind: str, filename: str) -> str:
    return f"{kind}; filename=\"{quote(filename, safe=' /')}\"; filename*=UTF-8''{quote(filename)}"


async def on_response_prepare(http: web.Request, response: web.StreamResponse) -> None:
    """Just before a temp URL's answer goes out: Swift's outgoing header rules."""
    answer = http.get(_REQUEST_KEY)
    if not isinstance(answer, _Answer):
        return
    for name in list(response.headers):
        lower = name.lower()
        if lower.startswith(_OUTGOING_REMOVE) and not lower.startswith(_OUTGOING_ALLOW):
            del response.headers[name]
    if http.method not in ("GET", "HEAD") or not 200 <= response.status < 300:
        return
    if answer.inline:
        value = _disposition("inline", answer.filename) if answer.filename else "inline"
    elif answer.filename:
        value = _disposition("attachment", answer.filename)
    else:
        value = response.headers.get("Content-Disposition") or _disposition(
            "attachment", posixpath.basename(answer.obj.rstrip("/")))
    response.headers["Content-Disposition"] = value.replace("\n", "%0A")
    response.headers["Expires"] = formatdate(answer.expires, usegmt=True)
