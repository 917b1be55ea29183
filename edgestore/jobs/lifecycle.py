"""Apply buckets' lifecycle rules (S3 lifecycle expiration): delete the objects a rule
says have expired, delete noncurrent versions past their days, abort multipart uploads
left unfinished too long. On a site whose SD cards fill up, this is how old camera
footage or logs go without anyone at a keyboard.

Which node works a bucket: each node looks at the bucket-name records on its own devices
(the name record holds the rules); the holder of the record's first primary replica
applies the rules as soon as something is due, the second and third only to what has
been due for one or two intervals — so a bucket whose first node is down is still worked,
a little later. Doing something twice is harmless.

Deleting what nobody asked to delete at that moment must never take a write that came in
meanwhile: in an unversioned bucket the tombstone is stamped just after the expired write
(Objects.expire_unversioned), so a later PUT wins whatever the timing; in a versioned
bucket expiring writes a delete marker (the version stays, noncurrent), after checking
that the version is still current.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from edgestore.cluster.coordinator import Coordinator
from edgestore.errors import ClusterError
from edgestore.model.buckets import Bucket, Buckets
from edgestore.model.lifecycle import abort_after_s, expires_at, matches, noncurrent_expires_at
from edgestore.model.multipart import Uploads
from edgestore.model.objects import ObjectInfo, Objects
from edgestore.model.versions import ListedVersion, Versions
from edgestore.store.records import KIND_BUCKET_NAME, placement_path

__all__ = ["Lifecycle"]

log = logging.getLogger(__name__)

PAGE = 500


def _due(rules: tuple[dict[str, Any], ...], info: ObjectInfo) -> float | None:
    """When the current object ``info`` expires: the earliest of the rules that match it."""
    times = [t for rule in rules if matches(rule, info.key, info.size, info.tags)
             and (t := expires_at(rule, info.last_modified)) is not None]
    return min(times, default=None)


def _noncurrent_due(rules: tuple[dict[str, Any], ...], info: ObjectInfo, superseded: float) -> float | None:
    times = [t for rule in rules if matches(rule, info.key, info.size, info.tags)
             and (t := noncurrent_expires_at(rule, superseded)) is not None]
    return min(times, default=None)


class Lifecycle:
    name = "lifecycle"

    def __init__(self, coordinator: Coordinator, buckets: Buckets, objects: Objects, versions: Versions,
                 uploads: Uploads, interval_s: float) -> None:
        self._coordinator = coordinator
        self._buckets = buckets
        self._objects = objects
        self._versions = versions
        self._uploads = uploads
        self.interval_s = interval_s

    async def run_once(self, all_buckets: bool = False, as_of: float | None = None, bucket: str | None = None,
                       **_: Any) -> dict[str, Any]:
        """One pass. ``all_buckets`` (for operators and tests): every bucket this node holds
        a name record of, applying all that is due now. ``bucket``: that bucket only.
        ``as_of``: apply the rules as of that unix time instead of now — a later time
        deletes early (tests, and operators who mean it)."""
        now = time.time() if as_of is None else float(as_of)
        counts = {"buckets": 0, "expired": 0, "noncurrent_expired": 0, "uploads_aborted": 0, "errors": 0}
        for name in await self._names_with_rules():
            if bucket is not None and name != bucket:
                continue
            rank = 0 if all_buckets else self._coordinator.local_rank(placement_path(KIND_BUCKET_NAME, name))
            if rank is None:
                continue  # a handoff copy of the name record: its primaries do the work
            found = await self._buckets.lookup(name, use_cache=False)
            if found is None or not found.lifecycle:
                continue
            counts["buckets"] += 1
            try:
                await self._apply(found, found.lifecycle, now - rank * self.interval_s, counts)
            except ClusterError as exc:  # not enough replicas now: the next pass goes on
                log.warning("lifecycle of bucket %s: %s", name, exc)
                counts["errors"] += 1
        return counts

    async def _names_with_rules(self) -> list[str]:
        names: set[str] = set()
        for device in self._coordinator.local_devices.values():
            after = None
            while True:
                page = await device.meta.list(KIND_BUCKET_NAME, "", after, PAGE)
                names.update(r.name for r in page if not r.deleted and r.value.get("lifecycle"))
                if len(page) < PAGE:
                    break
                after = page[-1].name
        return sorted(names)

    async def _apply(self, bucket: Bucket, rules: tuple[dict[str, Any], ...], cutoff: float,
                     counts: dict[str, int]) -> None:
        if any(rule.get("enabled") and rule.get("abort_days") is not None for rule in rules):
            await self._abort_uploads(bucket, rules, cutoff, counts)
        if not any(rule.get("enabled") and (rule.get("days") is not None or rule.get("date") is not None
                                            or rule.get("noncurrent_days") is not None) for rule in rules):
            return
        if bucket.versioning is None:
            async for info in self._objects.list(bucket.account, bucket.name):
                due = _due(rules, info)
                if due is not None and due <= cutoff:
                    await self._objects.expire_unversioned(bucket.account, bucket.name, info)
                    counts["expired"] += 1
            return
        # A key's versions are judged together, from one listing of them: what this pass
        # writes for a key (a delete marker) cannot change what it decides for the rest.
        group: list[ListedVersion] = []
        async for listed in self._versions.listing(bucket.account, bucket.name):
            if group and listed.info.key != group[0].info.key:
                await self._apply_versions(bucket, rules, group, cutoff, counts)
                group = []
            group.append(listed)
        if group:
            await self._apply_versions(bucket, rules, group, cutoff, counts)

    async def _apply_versions(self, bucket: Bucket, rules: tuple[dict[str, Any], ...], versions: list[ListedVersion],
                              cutoff: float, counts: dict[str, int]) -> None:
        """One key's versions, newest first."""
        newer: float | None = None  # when the next newer version was written
        for listed in versions:
            info = listed.info
            if listed.is_latest and not info.delete_marker:
                due = _due(rules, info)
                if due is not None and due <= cutoff and await self._still_current(bucket, info):
                    await self._versions.delete(bucket.account, bucket.name, info.key, bucket.versioning, None)
                    counts["expired"] += 1
            elif not listed.is_latest and newer is not None:
                due = _noncurrent_due(rules, info, newer)
                if due is not None and due <= cutoff:
                    await self._versions.delete(bucket.account, bucket.name, info.key, bucket.versioning,
                                                listed.version_id)
                    counts["noncurrent_expired"] += 1
            newer = info.last_modified

    async def _still_current(self, bucket: Bucket, info: ObjectInfo) -> bool:
        current = await self._objects.head(bucket.account, bucket.name, info.key)
        return current is not None and current.record.ts == info.record.ts

    async def _abort_uploads(self, bucket: Bucket, rules: tuple[dict[str, Any], ...], cutoff: float,
                             counts: dict[str, int]) -> None:
        for upload in await self._uploads.in_bucket(bucket.account, bucket.name):
            for rule in rules:
                limit = abort_after_s(rule)
                if limit is not None and rule.get("enabled") and upload.key.startswith(rule.get("prefix") or "") \
                        and upload.initiated + limit <= cutoff:
                    await self._uploads.abort(upload)
                    counts["uploads_aborted"] += 1
                    break
