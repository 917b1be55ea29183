"""Accounts' own metadata (Swift's X-Account-Meta-*, among them the TempURL keys) and
account ACL (X-Account-Access-Control).

An account exists as soon as it has a user; this record only holds what was set on it,
in the account's partition (beside its bucket records), so an account without one simply
has no metadata. Reads are cached for a few seconds per node: every temp URL request
needs the account's keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from edgestore.clock import Clock
from edgestore.cluster.coordinator import Coordinator
from edgestore.store.records import KIND_ACCOUNT, Record

__all__ = ["Account", "Accounts"]

CACHE_TTL_S = 5.0


@dataclass(frozen=True)
class Account:
    name: str
    meta: dict[str, str] = field(default_factory=dict)  # lower-case names, as Swift matches them
    # Swift's account ACL: a level ("admin", "read-write", "read-only") -> who has it
    # ("account" or "account:user"); empty when none was set.
    access: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_value(cls, name: str, value: dict[str, Any]) -> Account:
        meta = value.get("meta") or {}
        access = value.get("access") or {}
        return cls(name, {str(k): str(v) for k, v in meta.items()},
                   {str(level): [str(who) for who in names] for level, names in access.items()})


class Accounts:
    def __init__(self, coordinator: Coordinator, clock: Clock, node_id: str) -> None:
        self._coordinator = coordinator
        self._clock = clock
        self._node_id = node_id
        self._cache: dict[str, tuple[float, Account]] = {}

    async def get(self, name: str, use_cache: bool = True) -> Account:
        now = time.monotonic()
        cached = self._cache.get(name)
        if use_cache and cached is not None and cached[0] > now:
            return cached[1]
        record = await self._coordinator.get_record(KIND_ACCOUNT, name)
        account = Account(name) if record is None or record.deleted else Account.from_value(name, record.value)
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[name] = (now + CACHE_TTL_S, account)
        return account

    async def save(self, account: Account) -> Account:
        """Replace the account's record (the caller merged its metadata and ACL)."""
        value: dict[str, Any] = {"meta": account.meta}
        if account.access:
            value["access"] = account.access
        await self._coordinator.put_record(Record(KIND_ACCOUNT, account.name, self._clock.now(), self._node_id,
                                                  value=value))
        self._cache[account.name] = (time.monotonic() + CACHE_TTL_S, account)
        return account
