"""Who is calling: S3 authentication of an aiohttp request against the cluster's users."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Awaitable, Callable

from aiohttp import web

from edgestore.api.s3.context import S3Request, S3Services
from edgestore.api.s3.errors import S3Error
from edgestore.api.s3.sigv4 import AuthResult, PayloadMode, SignedRequest, authenticate
from edgestore.model.users import User

__all__ = ["authenticate_request", "admin_check"]


async def _authenticate(http: web.Request, services: S3Services,
                        host_bucket: str | None) -> tuple[User | None, AuthResult | None]:
    found: dict[str, User] = {}

    async def secret_of(access_key: str) -> str | None:
        user = await services.users.get(access_key)
        if user is None:
            return None
        found[access_key] = user
        return user.secret_key

    signed = SignedRequest.from_target(http.method, http.raw_path, http.headers,
                                       host=http.host, host_bucket=host_bucket)
    result = await authenticate(signed, secret_of, datetime.now(UTC))
    if result is None:
        return None, None
    return found[result.access_key], result


async def authenticate_request(req: S3Request) -> User | None:
    """The user who signed the request (None if anonymous); sets req.auth for the body."""
    host_bucket = req.bucket_name if req.services.config.s3_domain and req.http.host.split(":")[0].endswith(
        "." + req.services.config.s3_domain) else None
    user, result = await _authenticate(req.http, req.services, host_bucket)
    req.auth = result
    return user


def admin_check(services: S3Services) -> Callable[[web.Request, bytes], Awaitable[bool]]:
    """For the admin API: is this request (with this body) signed by an admin user?"""
    async def check(http: web.Request, body: bytes) -> bool:
        try:
            user, result = await _authenticate(http, services, None)
        except S3Error:
            return False
        if user is None or not user.admin or not isinstance(result, AuthResult):
            return False
        if result.payload_mode is PayloadMode.SIGNED:
            return hashlib.sha256(body).hexdigest() == result.content_sha256
        return result.payload_mode is PayloadMode.UNSIGNED
    return check
