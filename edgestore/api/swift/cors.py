"""CORS for the Swift API, as Swift's proxy does it, from container metadata:
X-Container-Meta-Access-Control-Allow-Origin (origins separated by spaces, or `*`),
-Max-Age and -Expose-Headers.

A preflight (OPTIONS with Origin and Access-Control-Request-Method) on a container or an
object is 200 with the Access-Control-* headers when the container allows the origin, 401
when it does not (or for the account, which has no such metadata); an OPTIONS without them
lists the methods (Allow). An actual request from an allowed origin gets
Access-Control-Allow-Origin and Access-Control-Expose-Headers on its answer (strict CORS
mode: only an allowed origin gets them, whoever signed the request).
"""

from __future__ import annotations

from aiohttp import web

from edgestore.api.swift.context import SwiftServices
from edgestore.api.swift.errors import SwiftError
from edgestore.model.buckets import Bucket

__all__ = ["options", "remember_origin", "add_headers"]

METHODS = "HEAD, GET, PUT, POST, COPY, OPTIONS, DELETE"
_ALLOW, _MAX_AGE, _EXPOSE = ("access-control-allow-origin", "access-control-max-age",
                             "access-control-expose-headers")  # (container meta names)
# Headers a page may read from every answer, as Swift exposes them.
_EXPOSED = ("cache-control", "content-language", "content-type", "expires", "last-modified", "pragma", "etag",
            "x-timestamp", "x-trans-id", "x-openstack-request-id")
_REQUEST_KEY = "edgestore.swift.cors"  # request key: (the allowed origin value, the container's expose list)


def _allowed_origin(bucket: Bucket | None, origin: str) -> str | None:
    """What Access-Control-Allow-Origin says for ``origin`` at this container, or None."""
    allowed = (bucket.meta.get(_ALLOW, "") if bucket is not None else "").split()
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


async def options(http: web.Request, services: SwiftServices, account: str, container: str | None) -> web.Response:
    origin = http.headers.get("Origin")
    method = http.headers.get("Access-Control-Request-Method")
    if not origin or not method:
        return web.Response(status=200, headers={"Allow": METHODS})
    bucket = await services.buckets.lookup(container) if container is not None else None
    if bucket is not None and bucket.account != account:
        bucket = None
    allowed = _allowed_origin(bucket, origin)
    if allowed is None or method not in METHODS.split(", "):
        raise SwiftError(401)
    assert bucket is not None
    headers = {"Access-Control-Allow-Origin": allowed, "Access-Control-Allow-Methods": METHODS,
               "Vary": "Origin"}
    if asked := http.headers.get("Access-Control-Request-Headers"):
        headers["Access-Control-Allow-Headers"] = asked
    if max_age := bucket.meta.get(_MAX_AGE):
        headers["Access-Control-Max-Age"] = max_age
    return web.Response(status=200, headers=headers)


async def remember_origin(http: web.Request, services: SwiftServices, account: str, container: str | None) -> None:
    """For a request with an Origin: note what its answer's CORS headers will be."""
    origin = http.headers.get("Origin")
    if not origin or container is None:
        return
    bucket = await services.buckets.lookup(container)
    if bucket is None or bucket.account != account:
        return
    allowed = _allowed_origin(bucket, origin)
    if allowed is not None:
        http[_REQUEST_KEY] = (allowed, bucket.meta.get(_EXPOSE, "").lower().replace(",", " ").split())


def add_headers(http: web.Request, response: web.StreamResponse) -> None:
    """Just before the answer goes out: the CORS headers remember_origin noted."""
    noted = http.get(_REQUEST_KEY)
    if noted is None:
        return
    allowed, extra = noted
    response.headers["Access-Control-Allow-Origin"] = allowed
    exposed = list(_EXPOSED) + [h.lower() for h in response.headers
                                if h.lower().startswith(("x-object-meta-", "x-container-meta-"))]
    response.headers["Access-Control-Expose-Headers"] = ", ".join(dict.fromkeys(exposed + extra))
