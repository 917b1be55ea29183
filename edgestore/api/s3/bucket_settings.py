"""A bucket setting kept as an XML document (CORS rules, lifecycle rules): Get, Put and
Delete of it, alike for each — only the owner, the body bounded and verified against
Content-MD5 or a checksum, S3's "not configured" error when there is none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from edgestore.api.s3.checksums import check_small_body
from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import InvalidRequest, MalformedXML
from edgestore.api.s3.unconfigured import NOT_CONFIGURED
from edgestore.api.s3.xml import local_name, parse_xml, xml_response
from edgestore.model.buckets import Bucket, Buckets
from edgestore.streams import BodyTooLarge, read_limited

__all__ = ["BucketSetting", "parse_rules"]

Rules = tuple[dict[str, Any], ...]


def parse_rules(body: bytes, root: str, element: str, most: int, what: str,
                parse_one: Callable[[Any], dict[str, Any]]) -> Rules:
    """The ``element`` children of document ``root``, each read by ``parse_one``: at least
    one (MalformedXML), at most ``most`` (InvalidRequest)."""
    rules = []
    for child in parse_xml(body, root):
        if local_name(child) != element:
            raise MalformedXML()
        rules.append(parse_one(child))
    if not rules:
        raise MalformedXML()
    if len(rules) > most:
        raise InvalidRequest(f"A {what} configuration holds at most {most} rules.")
    return tuple(rules)


@dataclass(frozen=True)
class BucketSetting:
    subresource: str  # its query name; NOT_CONFIGURED names the error when it is unset
    stored: Callable[[Bucket], Rules | None]
    parse: Callable[[bytes], Rules]  # the request body, checked; raises S3 errors
    render: Callable[[Rules], bytes]
    store: Callable[[Buckets, Bucket, Rules | None], Awaitable[Bucket]]
    max_body: int

    async def get(self, req: S3Request) -> web.StreamResponse:
        bucket = await req.own_bucket()
        rules = self.stored(bucket)
        if rules is None:
            missing = NOT_CONFIGURED[self.subresource]
            assert not isinstance(missing, bytes)
            raise missing(BucketName=bucket.name)
        return xml_response(self.render(rules))

    async def put(self, req: S3Request) -> web.StreamResponse:
        bucket = await req.own_bucket()
        try:
            body = await read_limited(req.http.content, self.max_body)
        except BodyTooLarge:
            raise MalformedXML() from None
        check_small_body(req.http.headers, body)
        await self.store(req.services.buckets, bucket, self.parse(body))
        return web.Response(status=200)

    async def delete(self, req: S3Request) -> web.StreamResponse:
        bucket = await req.own_bucket()
        if self.stored(bucket) is not None:
            await self.store(req.services.buckets, bucket, None)
        return web.Response(status=204)

    def handler(self, method: str) -> Callable[[S3Request], Awaitable[web.StreamResponse]] | None:
        return {"GET": self.get, "PUT": self.put, "DELETE": self.delete}.get(method)
