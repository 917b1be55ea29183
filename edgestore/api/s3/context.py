"""What every S3 handler gets: the parsed request, the caller, and the services."""

from __future__ import annotations

import functools
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
from edgestore.model.policy import Policy, Principal, parse_policy
from edgestore.model.users import User, Users
from edgestore.model.versions import Versions

__all__ = ["S3Services", "S3Request", "parse_target", "ADDRESSED"]

MAX_KEY_BYTES = 1024
ADDRESSED = "addressed"  # may()'s default: what the addressed bucket's policy says


@functools.lru_cache(maxsize=256)
def _parsed(bucket: str, text: str) -> Policy:
    """A stored policy, parsed once (it was checked when it was put)."""
    return parse_policy(text, bucket)


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
    # The IAM action this request is (api/s3/actions.py), which a bucket policy judges; set
    # by the router once the caller is known.
    action: str | None = None
    # What the addressed bucket's policy says of this request ("Allow", "Deny" or None),
    # known once bucket() has looked the bucket up.
    effect: str | None = None
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

    def policy_effect(self, bucket: Bucket, action: str | None, key: str | None) -> str | None:
        """What ``bucket``'s policy says of this caller doing ``action`` on ``key`` (None:
        the bucket itself): "Allow", "Deny", or None (no policy, or no statement applies)."""
        if bucket.policy is None or action is None:
            return None
        who = Principal(self.user.account, self.user.user) if self.user is not None else Principal(None)
        resource = f"arn:aws:s3:::{bucket.name}" + (f"/{key}" if key is not None else "")
        return _parsed(bucket.name, bucket.policy).decide(who, action, resource, self._policy_context())

    def _policy_context(self) -> dict[str, str]:
        """The condition keys a policy may test, as this request supplies them."""
        http = self.http
        context = {"aws:securetransport": "true" if http.secure else "false",
                   "aws:principaltype": "Anonymous" if self.user is None else "User"}
        if http.remote:
            context["aws:sourceip"] = http.remote
        for key, header in (("aws:referer", "Referer"), ("aws:useragent", "User-Agent"),
                            ("s3:x-amz-acl", "x-amz-acl")):
            if header in http.headers:
                context[key] = http.headers[header]
        if self.user is not None:
            context["aws:username"], context["aws:principalaccount"] = self.user.user, self.user.account
        for key, param in (("s3:prefix", "prefix"), ("s3:delimiter", "delimiter"), ("s3:max-keys", "max-keys"),
                           ("s3:versionid", "versionId")):
            if param in self.query:
                context[key] = self.query[param]
        return context

    def may(self, owner: str, acl: str, access: Access, effect: str | None = ADDRESSED) -> bool:
        """May the caller have `access` to a resource of `owner` that carries `acl`? A bucket
        policy's Deny overrides ownership and ACLs (admins included: the owner, or an admin,
        can always change the policy itself — bucket_policy.py), its Allow lets a stranger
        in. ``effect``: the policy's word, when the resource is not what the request
        addresses (a copy's source)."""
        said = self.effect if effect == ADDRESSED else effect
        if said == "Deny":
            return False
        return self.owns(owner) or said == "Allow" or acl_grants(acl, access, authenticated=self.user is not None)

    async def bucket(self) -> Bucket:
        """The addressed bucket, whoever may use it."""
        assert self.bucket_name is not None
        bucket = await self.services.buckets.lookup(self.bucket_name)
        if bucket is None:
            raise NoSuchBucket(BucketName=self.bucket_name)
        self.effect = self.policy_effect(bucket, self.action, self.key)
        return bucket

    async def own_bucket(self) -> Bucket:
        """The addressed bucket, for what only its owner does — or whom its policy allows."""
        bucket = await self.bucket()
        if not self.may(bucket.account, "private", Access.WRITE):
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
