"""What every S3 handler gets: the parsed request, the caller, and the services."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import web

from edgestore.api.s3.errors import AccessDenied, InvalidArgument, InvalidURI, KeyTooLongError, NoSuchBucket
from edgestore.api.s3.sigv4 import AuthResult
from edgestore.config import NodeConfig
from edgestore.model.acl import Access, acl_grants
from edgestore.model.buckets import Bucket, Buckets
from edgestore.model.multipart import Uploads
from edgestore.model.objects import Objects
from edgestore.model.users import User, Users
from edgestore.model.versions import Versions

__all__ = ["S3Services", "S3Request", "parse_target"]

MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class S3Services:
    config: NodeConfig
    users: Users
    buckets: Buckets
    objects: Objects
    uploads: Uploads
    versions: Versions


@dataclass
class S3Request:
    http: web.Request
    services: S3Services
    request_id: str
    bucket_name: str | None
    key: str | None
    query: dict[str, str]
    user: User | None = None
    auth: AuthResult | None = None
    # Set once a streamed answer has sent its headers: an error after that can only
    # cut the connection, not become an S3 error document.
    response_started: bool = False

    def mark_response_started(self) -> None:
        self.response_started = True

    @property
    def account(self) -> str:
        if self.user is None:
            raise AccessDenied()
        return self.user.account

    def owns(self, account: str) -> bool:
        return self.user is not None and (self.user.account == account or self.user.admin)

    def may(self, owner: str, acl: str, access: Access) -> bool:
        """May the caller have `access` to a resource of `owner` that carries `acl`?"""
        return self.owns(owner) or acl_grants(acl, access, authenticated=self.user is not None)

    async def bucket(self) -> Bucket:
        """The addressed bucket, whoever may use it."""
        assert self.bucket_name is not None
        bucket = await self.services.buckets.lookup(self.bucket_name)
        if bucket is None:
            raise NoSuchBucket(BucketName=self.bucket_name)
        return bucket

    async def own_bucket(self) -> Bucket:
        """The addressed bucket, which must belong to the caller's account."""
        bucket = await self.bucket()
        if not self.owns(bucket.account):
            raise AccessDenied()
        return bucket

    async def bucket_for(self, access: Access) -> Bucket:
        """The addressed bucket, if its owner or its ACL gives the caller `access`."""
        bucket = await self.bucket()
        if not self.may(bucket.account, bucket.acl, access):
            raise AccessDenied()
        return bucket


def _unquote_strict(raw: str) -> str:
    """Percent-decode as UTF-8, refusing malformed escapes and invalid UTF-8."""
    out = bytearray()
    i = 0
    raw_bytes = raw.encode("utf-8", "surrogateescape")
    while i < len(raw_bytes):
        c = raw_bytes[i]
        if c == 0x25:  # '%'
            hexpart = raw_bytes[i + 1:i + 3]
            try:
                out.append(int(hexpart, 16))
            except ValueError:
                raise InvalidURI() from None
            if len(hexpart) != 2:
                raise InvalidURI()
            i += 3
        else:
            out.append(c)
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidURI("Couldn't parse the specified URI: it is not valid UTF-8.") from None


def parse_target(request: web.Request, s3_domain: str | None) -> tuple[str | None, str | None, dict[str, str]]:
    """(bucket, key, query) from a path-style or virtual-hosted-style request."""
    raw_path, _, raw_query = request.raw_path.partition("?")
    try:
        query = dict(parse_qsl(raw_query, keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        raise InvalidURI() from None
    path = _unquote_strict(raw_path)
    host = request.headers.get("Host", "").rsplit(":", 1)[0].lower()
    bucket: str | None
    if s3_domain and host.endswith("." + s3_domain):
        bucket, key = host[: -len(s3_domain) - 1], path[1:]
    else:
        bucket, _, key = path[1:].partition("/")
    bucket = bucket or None
    if bucket is None:
        return None, None, query
    if "\x00" in key:  # it separates a key from its version ids, and XML cannot carry it
        raise InvalidArgument("Object keys may not contain the NUL character.")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise KeyTooLongError(Size=str(len(key.encode())), MaxSizeAllowed=str(MAX_KEY_BYTES))
    return bucket, key or None, query
