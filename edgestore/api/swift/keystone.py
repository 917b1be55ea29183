"""Keystone-compatible password auth (identity v3 and v2.0), for the Swift clients that
log in only through Keystone: ownCloud's and Nextcloud's Swift backends, rclone, and the
`swift` command line with --auth-version 3.

The mapping: one domain ("Default"; any domain given is accepted), a project (tenant) is an
account, a user is named as in TempAuth ("user" with a project, or "account:user"), and
the password is the user's Swift key. The tokens issued are auth.py's stateless TempAuth
tokens, so any node validates them and the storage URL in the catalog takes them as is.
A token does not record its scope: a reseller admin's token is good on every account
anyway, and validating a token reports the user's own project.

Served: POST /v3/auth/tokens (password or token method), GET/HEAD /v3/auth/tokens
(validate X-Subject-Token), POST /v2.0/tokens, and version discovery on /v3 and /v2.0.
Errors are Keystone's JSON: {"error": {"code", "title", "message"}}.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from edgestore import errors as domain
from edgestore.api.swift.auth import TOKEN_LIFETIME_S, make_token, token_access_key, user_for_token, user_with_key
from edgestore.api.swift.context import RESELLER_PREFIX, SwiftServices
from edgestore.api.swift.errors import SwiftError
from edgestore.model.users import ACCOUNT_NAME, User
from edgestore.streams import BodyTooLarge, read_limited

__all__ = ["is_keystone_path", "handle"]

V3_TOKENS = "/v3/auth/tokens"
V2_TOKENS = "/v2.0/tokens"
_V2_PATHS = ("/v2.0", "/v2.0/", V2_TOKENS)
MAX_AUTH_BODY = 64 * 1024
DOMAIN = {"id": "default", "name": "Default"}
INTERFACES = ("public", "internal", "admin")
_TITLES = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           413: "Request Entity Too Large", 503: "Service Unavailable"}
_UNAUTHORIZED = "The request you have made requires authentication."


def is_keystone_path(path: str) -> bool:
    """/v3 and below (never an S3 bucket: S3 names have 3 characters or more), and the
    few /v2.0 paths Keystone v2.0 clients use (v2.0 is a valid bucket name, so no more)."""
    return path == "/v3" or path.startswith("/v3/") or path in _V2_PATHS


class KeystoneError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Login:
    """What a v3 or v2.0 auth request asks, whatever its shape."""
    user: str | None          # user name or id, for a password login
    password: str | None
    token: str | None         # for a token (re-scoping) login
    project: str | None       # None: the user's own account


async def handle(http: web.Request, services: SwiftServices) -> web.Response:
    try:
        return await _route(http, services)
    except KeystoneError as err:
        return _error(http, err)
    except domain.ClusterError:
        return _error(http, KeystoneError(503, "The identity records cannot be read right now."))


async def _route(http: web.Request, services: SwiftServices) -> web.Response:
    path, method = http.path, http.method
    if path in ("/v3", "/v3/", "/v2.0", "/v2.0/"):
        _allow(method, "GET", "HEAD")
        return _json(http, 200, _version_doc(http, path.rstrip("/")))
    if path == V3_TOKENS:
        _allow(method, "POST", "GET", "HEAD")
        if method == "POST":
            return await _issue(http, services, _v3_login(await _body(http)), v3=True)
        return await _validate(http, services)
    if path == V2_TOKENS:
        _allow(method, "POST")
        return await _issue(http, services, _v2_login(await _body(http)), v3=False)
    raise KeystoneError(404, "The resource could not be found.")


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise KeystoneError(405, f"The method {method} is not allowed here; use {', '.join(allowed)}.")


# -- requests -------------------------------------------------------------------------------


async def _body(http: web.Request) -> dict[str, Any]:
    try:
        doc = json.loads(await read_limited(http.content, MAX_AUTH_BODY))
    except BodyTooLarge:
        raise KeystoneError(413, f"An auth request is at most {MAX_AUTH_BODY} bytes.") from None
    except ValueError:  # invalid JSON or UTF-8
        raise KeystoneError(400, "The request body is not valid JSON.") from None
    return _table(doc, "auth", "the request body")


def _table(doc: Any, key: str, where: str) -> dict[str, Any]:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, dict):
        raise KeystoneError(400, f"Expecting to find {key} in {where}.")
    return value


def _text(doc: dict[str, Any], *keys: str, where: str, required: bool = True) -> str | None:
    """The first of `keys` present in `doc`, which must be a string."""
    for key in keys:
        if key in doc:
            if not isinstance(doc[key], str):
                raise KeystoneError(400, f"{key} in {where} must be a string.")
            return str(doc[key])
    if required:
        raise KeystoneError(400, f"Expecting to find {' or '.join(keys)} in {where}.")
    return None


def _v3_login(auth: dict[str, Any]) -> Login:
    identity = _table(auth, "identity", "auth")
    methods = identity.get("methods")
    if not isinstance(methods, list) or not methods:
        raise KeystoneError(400, "Expecting to find methods in identity.")
    scope = auth.get("scope")
    project = None
    if isinstance(scope, dict) and "project" in scope:
        project = _text(_table(scope, "project", "scope"), "name", "id", where="project")
    elif scope is not None and not isinstance(scope, (dict, str)):  # "unscoped" is a string
        raise KeystoneError(400, "scope must be an object.")
    if "password" in methods:
        user = _table(_table(identity, "password", "identity"), "user", "password")
        return Login(_text(user, "id", "name", where="user"), _text(user, "password", where="user"),
                     None, project)
    if "token" in methods:
        return Login(None, None, _text(_table(identity, "token", "identity"), "id", where="token"), project)
    raise KeystoneError(401, "Attempted to authenticate with an unsupported method.")


def _v2_login(auth: dict[str, Any]) -> Login:
    project = _text(auth, "tenantName", "tenantId", where="auth", required=False)
    if "passwordCredentials" in auth:
        creds = _table(auth, "passwordCredentials", "auth")
        return Login(_text(creds, "username", "userId", where="passwordCredentials"),
                     _text(creds, "password", where="passwordCredentials"), None, project)
    if "token" in auth:
        return Login(None, None, _text(_table(auth, "token", "auth"), "id", where="token"), project)
    raise KeystoneError(400, "Expecting to find passwordCredentials or token in auth.")


async def _authenticate(services: SwiftServices, login: Login) -> tuple[User, str]:
    """The user and the project (account) it logs in to, or 401."""
    if login.token is not None:
        user = await _token_user(services, login.token)
    else:
        assert login.user is not None and login.password is not None
        name = login.user
        if ":" not in name:  # a plain user name is a user of the project asked for
            if login.project is None:
                raise KeystoneError(401, "Name the user as account:user, or scope to a project.")
            name = f"{login.project}:{name}"
        found = await user_with_key(services.users, name, login.password)
        if found is None:
            raise KeystoneError(401, _UNAUTHORIZED)
        user = found
    project = user.account if login.project is None else login.project
    if not ACCOUNT_NAME.fullmatch(project) or (project != user.account and not user.admin):
        raise KeystoneError(401, f"User {user.swift_name} has no access to project {project}.")
    return user, project


async def _token_user(services: SwiftServices, token: str) -> User:
    try:
        return await user_for_token(services.users, services.config.cluster_secret, token, time.time())
    except SwiftError:
        raise KeystoneError(401, _UNAUTHORIZED) from None


# -- answers --------------------------------------------------------------------------------


async def _issue(http: web.Request, services: SwiftServices, login: Login, v3: bool) -> web.Response:
    user, project = await _authenticate(services, login)
    now = int(time.time())
    expires = now + TOKEN_LIFETIME_S
    token = make_token(services.config.cluster_secret, user, expires)
    if v3:
        methods = ["token"] if login.token is not None else ["password"]
        return _json(http, 201, _v3_doc(http, services, user, project, token, now, expires, methods),
                     {"X-Subject-Token": token})
    return _json(http, 200, _v2_doc(http, services, user, project, token, now, expires))


async def _validate(http: web.Request, services: SwiftServices) -> web.Response:
    """GET/HEAD /v3/auth/tokens: the caller's X-Auth-Token must be valid; the answer
    describes X-Subject-Token (404 when it is not a valid token)."""
    await _token_user(services, http.headers.get("X-Auth-Token", ""))
    subject = http.headers.get("X-Subject-Token", "")
    try:
        user = await _token_user(services, subject)
    except KeystoneError:
        raise KeystoneError(404, "Could not find token.") from None
    parsed = token_access_key(subject)
    assert parsed is not None  # _token_user accepted it
    expires = parsed[1]
    doc = _v3_doc(http, services, user, user.account, subject, expires - TOKEN_LIFETIME_S, expires,
                  ["password"])
    return _json(http, 200, doc, {"X-Subject-Token": subject})


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _audit_id(token: str) -> str:
    """Keystone's audit ids are 22 characters of URL-safe base64; clients log them."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()[:16]).decode().rstrip("=")


def _roles(user: User) -> list[str]:
    # ResellerAdmin is the role Swift's keystoneauth middleware gives every account to.
    return ["member", "admin", "ResellerAdmin"] if user.admin else ["member"]


def _services(http: web.Request, project: str, identity_path: str) -> list[tuple[str, str, str]]:
    """(type, name, URL) of the catalog: our object store for the project, and ourselves."""
    base = f"{http.scheme}://{http.host}"
    return [("object-store", "swift", f"{base}/v1/{RESELLER_PREFIX}{project}"),
            ("identity", "keystone", base + identity_path)]


def _v3_doc(http: web.Request, services: SwiftServices, user: User, project: str, token: str,
            issued: int, expires: int, methods: list[str]) -> dict[str, Any]:
    region = services.config.swift_region
    catalog = [{"id": name, "type": kind, "name": name,
                "endpoints": [{"id": f"{name}-{interface}", "interface": interface, "region": region,
                               "region_id": region, "url": url} for interface in INTERFACES]}
               for kind, name, url in _services(http, project, "/v3")]
    return {"token": {
        "methods": methods, "expires_at": _iso(expires), "issued_at": _iso(issued),
        "audit_ids": [_audit_id(token)], "is_domain": False,
        "user": {"id": user.swift_name, "name": user.user, "domain": DOMAIN, "password_expires_at": None},
        "project": {"id": project, "name": project, "domain": DOMAIN},
        "roles": [{"id": role, "name": role} for role in _roles(user)],
        "catalog": catalog}}


def _v2_doc(http: web.Request, services: SwiftServices, user: User, project: str, token: str,
            issued: int, expires: int) -> dict[str, Any]:
    region = services.config.swift_region
    catalog = [{"type": kind, "name": name, "endpoints_links": [],
                "endpoints": [{"id": name, "region": region, "publicURL": url, "internalURL": url,
                               "adminURL": url}]}
               for kind, name, url in _services(http, project, "/v2.0")]
    return {"access": {
        "token": {"id": token, "issued_at": _iso(issued), "expires": _iso(expires)[:19] + "Z",
                  "audit_ids": [_audit_id(token)],
                  "tenant": {"id": project, "name": project, "enabled": True, "description": None}},
        "serviceCatalog": catalog,
        "user": {"id": user.swift_name, "name": user.user, "username": user.user, "roles_links": [],
                 "roles": [{"name": role} for role in _roles(user)]},
        "metadata": {"is_admin": int(user.admin), "roles": _roles(user)}}}


def _version_doc(http: web.Request, path: str) -> dict[str, Any]:
    v3 = path == "/v3"
    media = "application/vnd.openstack.identity-" + ("v3+json" if v3 else "v2.0+json")
    return {"version": {
        "id": "v3.14" if v3 else "v2.0", "status": "stable" if v3 else "deprecated",
        "updated": "2020-04-07T00:00:00Z" if v3 else "2016-08-04T00:00:00Z",
        "links": [{"rel": "self", "href": f"{http.scheme}://{http.host}{path}/"}],
        "media-types": [{"base": "application/json", "type": media}]}}


def _json(http: web.Request, status: int, doc: dict[str, Any],
          headers: dict[str, str] | None = None) -> web.Response:
    body = b"" if http.method == "HEAD" else json.dumps(doc).encode()
    return web.Response(status=status, body=body, headers=headers, content_type="application/json")


def _error(http: web.Request, err: KeystoneError) -> web.Response:
    doc = {"error": {"code": err.code, "title": _TITLES.get(err.code, "Error"), "message": err.message}}
    headers = {}
    if err.code == 401:
        version = "/v2.0" if http.path.startswith("/v2.0") else "/v3"
        headers["WWW-Authenticate"] = f'Keystone uri="{http.scheme}://{http.host}{version}"'
    response = _json(http, err.code, doc, headers)
    if http.can_read_body and not http.content.at_eof():
        response.force_close()  # an error before the body was read: do not read it
    return response
