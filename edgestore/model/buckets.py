"""Buckets: a bucket belongs to one account; its name is unique in the cluster (as in S3).

Two records describe a bucket: a name record ("which account owns this name", in the
partition of "/.bucketnames/<name>") that every S3 request resolves, and a bucket record
in the account's partition that lists the account's buckets. Name lookups are cached
for a few seconds per node, since every object request needs one.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator

from edgestore.clock import Clock
from edgestore.cluster.coordinator import Coordinator
from edgestore.errors import BucketExists, BucketNotEmpty, NoSuchBucket
from edgestore.model.acl import DEFAULT_ACL
from edgestore.model.expiry import is_expired
from edgestore.store.records import (
    KIND_BUCKET,
    KIND_BUCKET_NAME,
    KIND_OBJECT,
    KIND_VERSION,
    Record,
    bucket_record_name,
    placement_path,
)

__all__ = ["Bucket", "Buckets", "SwiftVersions", "valid_bucket_name"]

CACHE_TTL_S = 5.0
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def valid_bucket_name(name: str) -> bool:
    """S3's rules for new buckets: 3-63 lower-case letters, digits, '.', '-'; no '..',
    not shaped like an IP address, none of the reserved prefixes and suffixes."""
    return bool(
        _BUCKET_NAME.match(name) and ".." not in name and not _IPV4.match(name)
        and not name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
        and not name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3"))
        and ".-" not in name and "-." not in name
    )


@dataclass(frozen=True)
class SwiftVersions:
    """Swift's versioned writes on a container: its archive container and how DELETE uses it."""
    mode: str      # "stack" (X-Versions-Location) or "history" (X-History-Location)
    location: str  # the archive container's name


@dataclass(frozen=True)
class Bucket:
    name: str
    account: str
    created_ts: int
    acl: str = DEFAULT_ACL
    versioning: str | None = None  # None (never enabled), "Enabled" or "Suspended"
    # Swift's container metadata (X-Container-Meta-*, lower-case names) and its read and
    # write ACLs (X-Container-Read/-Write, TempAuth syntax); records from before have none.
    meta: dict[str, str] = field(default_factory=dict)
    read_acl: str = ""
    write_acl: str = ""
    swift_versions: SwiftVersions | None = None
    # S3 CORS rules (api/s3/cors.py keeps their form), None when the bucket has none.
    cors: tuple[dict[str, Any], ...] | None = None
    # S3 lifecycle rules (model/lifecycle.py keeps their form), None when the bucket has none.
    lifecycle: tuple[dict[str, Any], ...] | None = None
    # S3 bucket tags ({"key", "value"} each), None when it was never tagged.
    tags: tuple[dict[str, Any], ...] | None = None
    # The S3 bucket policy as it was put (JSON; model/policy.py reads it), or None.
    policy: str | None = None

    def value(self) -> dict[str, object]:
        value: dict[str, object] = {
            "account": self.account, "created_ts": self.created_ts, "acl": self.acl, "versioning": self.versioning,
            "meta": self.meta, "read_acl": self.read_acl, "write_acl": self.write_acl}
        if self.swift_versions is not None:  # (absent, not null: records from before stay as they were)
            value["swift_versions"] = [self.swift_versions.mode, self.swift_versions.location]
        if self.cors is not None:
            value["cors"] = list(self.cors)
        if self.lifecycle is not None:
            value["lifecycle"] = list(self.lifecycle)
        if self.tags is not None:
            value["tags"] = list(self.tags)
        if self.policy is not None:
            value["policy"] = self.policy
        return value

    @classmethod
    def from_value(cls, name: str, value: dict[str, Any]) -> Bucket:
        versioning = value.get("versioning")
        meta = value.get("meta") or {}
        versions = value.get("swift_versions")
        return cls(name, str(value["account"]), int(value["created_ts"]), str(value.get("acl", DEFAULT_ACL)),
                   str(versioning) if versioning is not None else None,
                   {str(k): str(v) for k, v in meta.items()}, str(value.get("read_acl") or ""),
                   str(value.get("write_acl") or ""), SwiftVersions(*map(str, versions)) if versions else None,
                   tuple(cors) if isinstance(cors := value.get("cors"), list) else None,
                   tuple(rules) if isinstance(rules := value.get("lifecycle"), list) else None,
                   tuple(tags) if isinstance(tags := value.get("tags"), list) else None,
                   str(policy) if (policy := value.get("policy")) is not None else None)


class Buckets:
    def __init__(self, coordinator: Coordinator, clock: Clock, node_id: str) -> None:
        self._coordinator = coordinator
        self._clock = clock
        self._node_id = node_id
        self._cache: dict[str, tuple[float, Bucket]] = {}

    async def lookup(self, name: str, use_cache: bool = True) -> Bucket | None:
        now = time.monotonic()
        cached = self._cache.get(name)
        if use_cache and cached is not None and cached[0] > now:
            return cached[1]
        record = await self._coordinator.get_record(KIND_BUCKET_NAME, name)
        if record is None or record.deleted:
            self._cache.pop(name, None)
            return None
        bucket = Bucket.from_value(name, record.value)
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[name] = (now + CACHE_TTL_S, bucket)
        return bucket

    async def get(self, name: str) -> Bucket:
        bucket = await self.lookup(name)
        if bucket is None:
            raise NoSuchBucket(name)
        return bucket

    async def create(self, account: str, name: str, acl: str = DEFAULT_ACL, *, meta: dict[str, str] | None = None,
                     read_acl: str = "", write_acl: str = "", swift_versions: SwiftVersions | None = None,
                     versioning: str | None = None) -> Bucket:
        existing = await self.lookup(name, use_cache=False)
        if existing is not None:
            raise BucketExists(name, owned_by_requester=existing.account == account)
        bucket = Bucket(name, account, self._clock.now(), acl, meta=dict(meta or {}), read_acl=read_acl,
                        write_acl=write_acl, swift_versions=swift_versions, versioning=versioning)
        await self._write(bucket)
        return bucket

    async def set_acl(self, bucket: Bucket, acl: str) -> Bucket:
        changed = replace(bucket, acl=acl)
        await self._write(changed)
        return changed

    async def set_cors(self, bucket: Bucket, rules: tuple[dict[str, Any], ...] | None) -> Bucket:
        return await self._change(bucket, cors=rules)

    async def set_lifecycle(self, bucket: Bucket, rules: tuple[dict[str, Any], ...] | None) -> Bucket:
        return await self._change(bucket, lifecycle=rules)

    async def set_tags(self, bucket: Bucket, tags: tuple[dict[str, Any], ...] | None) -> Bucket:
        return await self._change(bucket, tags=tags)

    async def set_policy(self, bucket: Bucket, policy: str | None) -> Bucket:
        return await self._change(bucket, policy=policy)

    async def _change(self, bucket: Bucket, **fields: Any) -> Bucket:
        """Write ``fields`` into the bucket's record as read now (not as cached: a change
        made through another node moments ago is kept)."""
        fresh = await self.lookup(bucket.name, use_cache=False)
        if fresh is None or fresh.account != bucket.account:
            raise NoSuchBucket(bucket.name)
        changed = replace(fresh, **fields)
        await self._write(changed)
        return changed

    async def set_versioning(self, bucket: Bucket, status: str) -> Bucket:
        changed = replace(bucket, versioning=status)
        await self._write(changed)
        return changed

    async def set_swift_meta(self, bucket: Bucket, meta: dict[str, str], read_acl: str, write_acl: str,
                             swift_versions: SwiftVersions | None, versioning: str | None) -> Bucket:
        """Replace the container metadata, ACLs and both kinds of versioning (the caller
        merged them)."""
        changed = replace(bucket, meta=dict(meta), read_acl=read_acl, write_acl=write_acl,
                          swift_versions=swift_versions, versioning=versioning)
        await self._write(changed)
        return changed

    async def _write(self, bucket: Bucket) -> None:
        # The account's listing first: a crash between the two writes leaves a listed
        # bucket whose name is still free, which a retry of the create completes.
        ts = self._clock.now()
        value = bucket.value()
        await self._coordinator.put_record(
            Record(KIND_BUCKET, bucket_record_name(bucket.account, bucket.name), ts, self._node_id, value=value))
        await self._coordinator.put_record(Record(KIND_BUCKET_NAME, bucket.name, ts, self._node_id, value=value))
        self._cache[bucket.name] = (time.monotonic() + CACHE_TTL_S, bucket)

    async def delete(self, account: str, name: str) -> None:
        bucket = await self.lookup(name, use_cache=False)
        if bucket is None or bucket.account != account:
            raise NoSuchBucket(name)
        if await self.has_objects(bucket):
            raise BucketNotEmpty(name)
        ts = self._clock.now()
        await self._coordinator.put_record(Record(KIND_BUCKET_NAME, name, ts, self._node_id, deleted=True))
        await self._coordinator.put_record(
            Record(KIND_BUCKET, bucket_record_name(account, name), ts, self._node_id, deleted=True))
        self._cache.pop(name, None)

    async def has_objects(self, bucket: Bucket) -> bool:
        """Any object, or in a versioned bucket any version (delete markers included)?"""
        prefix = f"{bucket.account}/{bucket.name}/"
        path = placement_path(KIND_OBJECT, prefix)
        now = time.time()
        for kind in (KIND_OBJECT, KIND_VERSION):
            async for record in self._coordinator.iter_records(kind, path, prefix, page_size=100):
                # An expired object is gone for listings, so for emptiness too (the expirer
                # tombstones its record later, bucket or no bucket).
                if not record.deleted and not (kind == KIND_OBJECT and is_expired(record.value, now)):
                    return True
        return False

    async def list_for_account(self, account: str) -> AsyncIterator[Bucket]:
        prefix = account + "/"
        async for record in self._coordinator.iter_records(KIND_BUCKET, "/" + account, prefix):
            if not record.deleted:
                yield Bucket.from_value(record.name[len(prefix):], record.value)
