"""What every Swift handler gets: the parsed path, the caller and the services."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from edgestore.api.http import imf_fixdate
from edgestore.api.swift.authorize import Caller, Op, authorize
from edgestore.api.swift.errors import SwiftError
from edgestore.config import NodeConfig
from edgestore.model.accounts import Accounts
from edgestore.model.buckets import Bucket, Buckets
from edgestore.model.objects import Objects
from edgestore.model.users import User, Users
from edgestore.model.versions import Versions

__all__ = ["SwiftServices", "SwiftRequest", "RESELLER_PREFIX", "http_date", "iso_time", "x_timestamp"]

RESELLER_PREFIX = "AUTH_"


@dataclass(frozen=True)
class SwiftServices:
    config: NodeConfig
    users: Users
    buckets: Buckets
    objects: Objects
    versions: Versions
    accounts: Accounts


@dataclass
class SwiftRequest:
    http: web.Request
    services: SwiftServices
    account: str            # without the reseller prefix
    container: str | None
    obj: str | None
    query: dict[str, str]
    user: User | None  # None: anonymous or a temp URL
    # Set once a streamed answer has sent its headers: an error after that can only cut
    # the connection.
    response_started: bool = False
    # Who is asking, for checks beyond the router's (a copy's other end); without it, the
    # caller is `user` and only owners are let in.
    caller: Caller | None = None

    @property
    def owner(self) -> bool:
        """Does the caller own the addressed account (and so see its secrets: ACLs, keys)?"""
        return (self.caller or Caller(self.user)).owns(self.account)

    async def authorize(self, container: str | None, op: Op) -> None:
        """Raise 401/403 unless the caller may do `op` on `container` (None: the account)."""
        await authorize(self.services.buckets, self.caller or Caller(self.user), self.account, container, op,
                        self.http.headers.get("Referer"))

    def mark_response_started(self) -> None:
        self.response_started = True

    async def own_container(self) -> Bucket:
        """The addressed container, which must be a bucket of the addressed account."""
        assert self.container is not None
        bucket = await self.services.buckets.lookup(self.container)
        if bucket is None or bucket.account != self.account:
            raise SwiftError(404)
        return bucket


def is_true(value: str) -> bool:
    """A flag's value as Swift reads it (its config_true_value): true, 1, yes, on, t or y."""
    return value.strip().lower() in ("true", "1", "yes", "on", "t", "y")


def http_date(seconds: float) -> str:
    """Last-Modified as Swift sends it: whole seconds, rounded up."""
    return imf_fixdate(math.ceil(seconds))


def iso_time(seconds: float) -> str:
    """Listings' last_modified: ISO 8601 with microseconds and no zone, as Swift writes it.
    A listing writes one per object, and objects share their second: the second is
    formatted once, the microseconds rounded as datetime.fromtimestamp rounds them."""
    if not seconds >= 0:  # (and NaN) as datetime has it
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    fraction, whole = math.modf(seconds)
    micro = round(fraction * 1e6)  # half to even, as datetime rounds
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    return f"{_iso_second(int(whole))}.{micro:06d}"


@functools.lru_cache(maxsize=1024)
def _iso_second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def x_timestamp(seconds: float) -> str:
    return f"{seconds:016.5f}"
