"""Swift v1 authentication (TempAuth's protocol): log in with account:user and a key,
get a token and the storage URL; later requests carry the token.

Tokens are stateless: "AUTH_tk" + hex(access key) + "_" + expiry + "_" + HMAC-SHA256 with
the cluster secret over (access key, expiry, the user's Swift key). Any node verifies
any token without a shared token store, and changing a user's Swift key revokes its
tokens. A token cannot be revoked otherwise before it expires (24 h by default).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from aiohttp import web

from edgestore.api.swift.context import RESELLER_PREFIX, SwiftServices
from edgestore.api.swift.errors import SwiftError
from edgestore.model.users import ACCOUNT_NAME, User, Users

__all__ = ["TOKEN_LIFETIME_S", "make_token", "token_access_key", "login", "user_for_token", "user_with_key"]

TOKEN_LIFETIME_S = 24 * 3600
TOKEN_PREFIX = "AUTH_tk"
_DOMAIN = b"edgestore swift token v1\x00"
# Tokens whose signature was checked, with the secret, the user record it was checked
# against and the token's expiry. A hit needs the very record Users.get returns now: a
# changed key, a deleted user or a re-read record misses and is checked afresh, so a token
# is refused exactly when it would be without this (within the users cache's own lifetime),
# and neither the token's text is parsed nor an HMAC computed on every request of a session.
_verified: dict[str, tuple[bytes, User, int]] = {}
_VERIFIED_MAX = 10_000


def _signature(secret: bytes, access_key: str, expires: int, swift_key: str) -> str:
    message = _DOMAIN + b"\x00".join([access_key.encode(), str(expires).encode(), swift_key.encode()])
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def make_token(secret: bytes, user: User, expires: int) -> str:
    sig = _signature(secret, user.access_key, expires, user.effective_swift_key)
    return f"{TOKEN_PREFIX}{user.access_key.encode().hex()}_{expires}_{sig}"


def token_access_key(token: str) -> tuple[str, int, str] | None:
    """(access key, expiry, signature) from a token's text, None if it is not one of ours."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    parts = token[len(TOKEN_PREFIX):].split("_")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
        return None
    try:
        access_key = bytes.fromhex(parts[0]).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return access_key, int(parts[1]), parts[2]


async def user_for_token(users: Users, secret: bytes, token: str, now: float) -> User:
    """The user a token was issued to; 401 if it is malformed, forged, stale or revoked."""
    checked = _verified.get(token)
    if checked is not None:
        checked_secret, checked_user, checked_expires = checked
        if checked_expires > now and checked_secret == secret \
                and await users.get(checked_user.access_key) is checked_user:
            return checked_user
    parsed = token_access_key(token)
    if parsed is None:
        raise SwiftError(401)
    access_key, expires, sig = parsed
    if expires <= now:
        raise SwiftError(401)
    user = await users.get(access_key)
    if user is None:
        raise SwiftError(401)
    if not hmac.compare_digest(sig, _signature(secret, access_key, expires, user.effective_swift_key)):
        raise SwiftError(401)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[token] = (secret, user, expires)
    return user


async def user_with_key(users: Users, swift_name: str, key: str) -> User | None:
    """The user "account:user" if `key` is its Swift key (TempAuth's and Keystone's check)."""
    account, _, name = swift_name.partition(":")
    if not (ACCOUNT_NAME.fullmatch(account) and ACCOUNT_NAME.fullmatch(name)):
        return None  # no such user can exist: no lookup
    user = await users.get_by_swift_name(swift_name)
    # surrogatepass: a key from JSON may hold lone surrogates; it then simply does not match.
    if user is None or not hmac.compare_digest(key.encode("utf-8", "surrogatepass"),
                                               user.effective_swift_key.encode()):
        return None
    return user


async def login(http: web.Request, services: SwiftServices) -> web.Response:
    """GET /auth/v1.0 (and /auth/v1.0/): X-Auth-User account:user and X-Auth-Key (or the
    X-Storage-* twins) for a token and the account's storage URL on the host asked."""
    name = http.headers.get("X-Auth-User") or http.headers.get("X-Storage-User")
    key = http.headers.get("X-Auth-Key") or http.headers.get("X-Storage-Pass")
    if http.method not in ("GET", "HEAD"):
        raise SwiftError(405)
    if not name or key is None or ":" not in name:
        raise SwiftError(401)
    user = await user_with_key(services.users, name, key)
    if user is None:
        raise SwiftError(401)
    expires = int(time.time()) + TOKEN_LIFETIME_S
    token = make_token(services.config.cluster_secret, user, expires)
    url = f"{http.scheme}://{http.host}/v1/{RESELLER_PREFIX}{user.account}"
    headers = {"X-Auth-Token": token, "X-Storage-Token": token, "X-Storage-Url": url,
               "X-Auth-Token-Expires": str(TOKEN_LIFETIME_S)}
    return web.Response(status=200, headers=headers, text="", content_type="text/plain")
