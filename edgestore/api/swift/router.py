"""The Swift API's entry point: tell Swift requests from S3 ones, parse the path,
authenticate the caller (temp URL, token or anonymous), authorize the operation
(authorize.py), pick the handler, and render every error as Swift does.

Paths: /auth/v1.0 (login), /info (capabilities), /v1/AUTH_<account>[/<container>[/<object>]],
and Keystone's /v3/... and /v2.0/tokens (keystone.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Awaitable, Callable
from urllib.parse import parse_qsl, unquote_to_bytes

from aiohttp import web

from edgestore import errors as domain
from edgestore.api.swift import (
    account,
    bulk,
    container,
    cors,
    extract,
    keystone,
    object_versioning,
    objects,
    slo,
    tempurl,
    versioned,
)
from edgestore.api.swift.acl import account_level
from edgestore.api.swift.auth import login, user_for_token
from edgestore.api.swift.authorize import Caller, operation
from edgestore.api.swift.container import MAX_CONTAINER_NAME_BYTES
from edgestore.api.swift.context import RESELLER_PREFIX, SwiftRequest, SwiftServices
from edgestore.api.swift.errors import SwiftError, as_swift_error, error_response
from edgestore.api.swift.listing import LISTING_LIMIT
from edgestore.api.swift.tempurl import temp_url_caller

__all__ = ["SwiftApi", "is_swift_request"]

log = logging.getLogger(__name__)

Handler = Callable[[SwiftRequest], Awaitable[web.StreamResponse]]
AUTH_PATHS = ("/auth/v1.0", "/auth/v1.0/")
_S3_QUERY_AUTH = ("x-amz-credential", "x-amz-signature", "awsaccesskeyid", "signature")
SWIFT_VERSION = "2.34.0-edgestore"


def _has_s3_auth(http: web.Request) -> bool:
    if "Authorization" in http.headers:
        return True
    return any(name.lower() in _S3_QUERY_AUTH for name in http.query)


def is_swift_request(http: web.Request, s3_domain: str | None) -> bool:
    """Is this a Swift request rather than an S3 one? Swift's paths (/auth/v1.0, /info,
    /v1/...) are also valid S3 paths (buckets "auth", "info", "v1"), so the path alone
    does not decide: a Swift request carries Swift credentials (X-Auth-Token, or the login
    headers) or no S3 credentials at all. A request to a virtual-hosted S3 bucket is S3."""
    if s3_domain and http.host.rsplit(":", 1)[0].lower().endswith("." + s3_domain):
        return False
    path = http.path
    if path in AUTH_PATHS:
        return "X-Auth-User" in http.headers or "X-Storage-User" in http.headers
    if path == "/info" or keystone.is_keystone_path(path):
        return not _has_s3_auth(http)
    if path == "/v1" or path.startswith("/v1/"):
        if "X-Auth-Token" in http.headers or "X-Storage-Token" in http.headers:
            return True
        return not _has_s3_auth(http)
    return False


def _split_path(raw_path: str) -> tuple[str, str | None, str | None]:
    """(account, container, object) from /v1/AUTH_account[/container[/object]], strictly
    decoded: invalid UTF-8 or NUL is 412, as Swift answers."""
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise SwiftError(412, "Invalid UTF8 or contains NULL") from None
    if "\x00" in path:
        raise SwiftError(412, "Invalid UTF8 or contains NULL")
    parts = path.split("/", 4)  # "", "v1", account, container, object
    if len(parts) < 3 or parts[1] != "v1" or not parts[2]:
        raise SwiftError(412, "Bad URL")
    if not parts[2].startswith(RESELLER_PREFIX) or len(parts[2]) == len(RESELLER_PREFIX):
        raise SwiftError(401)  # not an account our auth serves
    container = parts[3] if len(parts) > 3 and parts[3] else None
    obj = parts[4] if len(parts) > 4 and parts[4] else None
    if container is None and obj is not None:
        raise SwiftError(412, "Bad URL")
    if container is not None and len(container.encode()) > MAX_CONTAINER_NAME_BYTES:
        raise SwiftError(400, f"Container name length of {len(container.encode())} longer than "
                              f"{MAX_CONTAINER_NAME_BYTES}")
    if obj is not None and len(obj.encode()) > objects.MAX_OBJECT_NAME_BYTES:
        raise SwiftError(400, f"Object name length of {len(obj.encode())} longer than "
                              f"{objects.MAX_OBJECT_NAME_BYTES}")
    return parts[2][len(RESELLER_PREFIX):], container, obj


def _pick(method: str, container_name: str | None, obj: str | None) -> Handler:
    if container_name is None:
        table: dict[str, Handler] = {"GET": account.account_get, "HEAD": account.account_head,
                                     "POST": account.account_post}
    elif obj is None:
        table = {"PUT": container.container_put, "DELETE": container.container_delete,
                 "HEAD": container.container_head, "GET": container.container_get,
                 "POST": container.container_post}
    else:
        table = {"PUT": objects.object_put, "GET": objects.object_get, "HEAD": objects.object_head,
                 "DELETE": objects.object_delete, "POST": objects.object_post, "COPY": objects.object_copy}
    handler = table.get(method)
    if handler is None:
        raise SwiftError(405, None, {"Allow": ", ".join(sorted(table))})
    return handler


def capabilities() -> dict[str, object]:
    """What GET /info reports: only what this API implements."""
    return {"swift": {"version": SWIFT_VERSION, "max_file_size": objects.MAX_FILE_SIZE,
                      "max_object_name_length": objects.MAX_OBJECT_NAME_BYTES,
                      "max_container_name_length": MAX_CONTAINER_NAME_BYTES,
                      "container_listing_limit": LISTING_LIMIT, "account_listing_limit": LISTING_LIMIT,
                      **objects.META_LIMITS, "strict_cors_mode": True, "allow_account_management": False},
            "tempauth": {"account_acls": True}, "bulk_delete": bulk.CAPABILITIES,
            "bulk_upload": extract.CAPABILITIES, "versioned_writes": versioned.CAPABILITIES,
            "object_versioning": object_versioning.CAPABILITIES,
            "tempurl": tempurl.capabilities(), "container_quotas": {}, "account_quotas": {},
            "slo": slo.capabilities(), "dlo": {},
            "keystone": {"versions": ["v3", "v2.0"], "methods": ["password", "token"]}}


class SwiftApi:
    def __init__(self, services: SwiftServices) -> None:
        self.services = services

    @staticmethod
    async def on_response_prepare(http: web.Request, response: web.StreamResponse) -> None:
        """Just before a Swift answer goes out: temp URLs' header rules, then CORS headers."""
        await tempurl.on_response_prepare(http, response)
        cors.add_headers(http, response)

    async def handle(self, http: web.Request) -> web.StreamResponse:
        req: SwiftRequest | None = None
        try:
            if http.path in AUTH_PATHS:
                return await login(http, self.services)
            if keystone.is_keystone_path(http.path):
                return await keystone.handle(http, self.services)
            if http.path == "/info":
                if http.method not in ("GET", "HEAD"):
                    raise SwiftError(405)
                return web.json_response(capabilities())
            acct, cont, obj = _split_path(http.raw_path.partition("?")[0])
            try:
                query = dict(parse_qsl(http.raw_path.partition("?")[2], keep_blank_values=True, errors="strict"))
            except UnicodeDecodeError:
                raise SwiftError(412, "Invalid UTF8 or contains NULL") from None
            if http.method == "OPTIONS":  # a browser's preflight: no credentials, the container decides
                return await cors.options(http, self.services, acct, cont)
            await cors.remember_origin(http, self.services, acct, cont)
            # Bulk delete is an account operation: only the account's owner (or an admin) may.
            # Bulk extract checks each container it writes to itself.
            extracting = extract.is_extract(http.method, query)
            handler = bulk.bulk_delete if bulk.is_bulk_delete(http.method, cont, query) else \
                extract.extract_archive if extracting else _pick(http.method, cont, obj)
            # A temp URL stands for its signer; otherwise the token's user, or anonymous.
            caller = await temp_url_caller(http, self.services, acct, cont, obj, query)
            if caller is None:
                token = http.headers.get("X-Auth-Token") or http.headers.get("X-Storage-Token")
                caller = Caller(await user_for_token(self.services.users, self.services.config.cluster_secret,
                                                     token, time.time()) if token else None)
                if caller.user is not None and not caller.owns(acct):
                    level = account_level((await self.services.accounts.get(acct)).access, caller.groups)
                    if level is not None:
                        caller = dataclasses.replace(caller, granted=(acct, level))
            req = SwiftRequest(http, self.services, acct, cont, obj, query, caller.user, caller=caller)
            if not extracting:
                await req.authorize(cont, operation(http.method, cont, obj))
            if http.method == "PUT" and cont is not None and obj is not None and not extracting:
                await container.enforce_quota(req, cont, req.http.content_length or 0)
                await account.enforce_account_quota(req, req.http.content_length or 0)
            response = await handler(req)
        except ConnectionError as exc:
            # The client went away: nothing to tell it. Cancelling is how aiohttp is told to
            # drop the connection quietly (as the S3 router does).
            log.info("Swift %s %s: client gone (%s)", http.method, http.path, exc)
            raise asyncio.CancelledError() from exc
        except Exception as exc:  # the edge: every failure leaves as a Swift answer
            if req is not None and req.response_started:
                log.warning("Swift %s %s cut short: %s", http.method, http.path, exc)
                raise
            err = as_swift_error(exc)
            if err.status >= 500 and not isinstance(exc, (SwiftError, domain.ClusterError)):
                log.exception("Swift %s %s failed", http.method, http.path)
            elif err.status >= 500:
                log.warning("Swift %s %s: %s", http.method, http.path, exc)
            response = error_response(err, http.method)
            if err.status == 401:
                response.headers["Www-Authenticate"] = 'Swift realm="unknown"'
            # An error before the body was read: close rather than read what we will not store.
            if http.can_read_body and not http.content.at_eof():
                response.force_close()
        response.headers.setdefault("X-Trans-Id", "tx" + format(time.time_ns(), "x"))
        return response
