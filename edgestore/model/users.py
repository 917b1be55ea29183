"""Users and their keys. A user belongs to one account; the account owns the buckets.

User records are replicated like everything else (partition of "/.users/<access key>"),
so any node can authenticate any request. Lookups are cached briefly: every S3 request
needs its user's secret, and a quorum read per request would double the work.

Swift logs users in by "account:user" and a Swift key, not by access key: an index record
(kind "swiftuser", name "account:user") names the user's access key, so a login reads the
index and then the (usually cached) user record. The Swift key defaults to the S3 secret.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from dataclasses import dataclass

from edgestore.clock import Clock
from edgestore.cluster.coordinator import Coordinator
from edgestore.errors import ModelError
from edgestore.store.records import KIND_SWIFT_USER, KIND_USER, Record

__all__ = ["User", "Users", "InvalidUser", "ACCOUNT_NAME"]

ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
ACCESS_KEY = re.compile(r"^[A-Za-z0-9_.+=-]{3,128}$")
CACHE_TTL_S = 10.0
NEGATIVE_CACHE_TTL_S = 1.0


class InvalidUser(ModelError):
    pass


@dataclass(frozen=True)
class User:
    account: str
    user: str
    access_key: str
    secret_key: str
    admin: bool = False
    swift_key: str = ""  # empty: the S3 secret key serves as the Swift key

    @property
    def swift_name(self) -> str:
        """How Swift's TempAuth names the user: "account:user"."""
        return f"{self.account}:{self.user}"

    @property
    def effective_swift_key(self) -> str:
        return self.swift_key or self.secret_key

    def to_value(self) -> dict[str, object]:
        return {"account": self.account, "user": self.user, "secret_key": self.secret_key,
                "admin": self.admin, "swift_key": self.effective_swift_key}


def new_access_key() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "ES" + "".join(secrets.choice(alphabet) for _ in range(18))


def new_secret_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(40))


class Users:
    def __init__(self, coordinator: Coordinator, clock: Clock, node_id: str) -> None:
        self._coordinator = coordinator
        self._clock = clock
        self._node_id = node_id
        self._cache: dict[str, tuple[float, User | None]] = {}

    async def create(self, account: str, user: str, *, admin: bool = False,
                     access_key: str | None = None, secret_key: str | None = None,
                     swift_key: str | None = None) -> User:
        if not ACCOUNT_NAME.fullmatch(account) or not ACCOUNT_NAME.fullmatch(user):
            raise InvalidUser("account and user names are 1-64 letters, digits, '_', '.', '-'")
        access_key = access_key or new_access_key()
        secret_key = secret_key or new_secret_key()
        if not ACCESS_KEY.fullmatch(access_key) or len(secret_key) < 8:
            raise InvalidUser("access keys are 3-128 plain characters; secret keys at least 8")
        swift_key = swift_key or secret_key
        if not isinstance(swift_key, str) or not swift_key.isprintable() or len(swift_key) > 256:
            raise InvalidUser("Swift keys are at most 256 printable characters")
        existing = await self.get(access_key, use_cache=False)
        if existing is not None and (existing.account, existing.user) != (account, user):
            raise InvalidUser(f"access key {access_key} belongs to another user")
        new = User(account, user, access_key, secret_key, admin, swift_key)
        await self._coordinator.put_record(
            Record(KIND_USER, access_key, self._clock.now(), self._node_id, value=new.to_value()))
        # After the user record: an index never names a user that does not exist.
        await self._coordinator.put_record(
            Record(KIND_SWIFT_USER, new.swift_name, self._clock.now(), self._node_id,
                   value={"access_key": access_key}))
        self._cache[access_key] = (time.monotonic() + CACHE_TTL_S, new)
        return new

    async def get(self, access_key: str, use_cache: bool = True) -> User | None:
        now = time.monotonic()
        cached = self._cache.get(access_key)
        if use_cache and cached is not None and cached[0] > now:
            return cached[1]
        record = await self._coordinator.get_record(KIND_USER, access_key)
        user = None
        if record is not None and not record.deleted:
            v = record.value
            user = User(str(v["account"]), str(v["user"]), access_key, str(v["secret_key"]),
                        bool(v.get("admin", False)), str(v.get("swift_key") or ""))
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[access_key] = (now + (CACHE_TTL_S if user else NEGATIVE_CACHE_TTL_S), user)
        return user

    async def get_by_swift_name(self, swift_name: str) -> User | None:
        """The user Swift calls "account:user", through the index record."""
        record = await self._coordinator.get_record(KIND_SWIFT_USER, swift_name)
        if record is None or record.deleted:
            return None
        user = await self.get(str(record.value.get("access_key", "")))
        if user is None or user.swift_name != swift_name:
            return None
        return user
