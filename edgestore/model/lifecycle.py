"""Lifecycle rules: which objects of a bucket expire, and when (S3's lifecycle expiration).

A rule, as the bucket record keeps it (api/s3/lifecycle.py reads and writes the XML)::

    {"id": "old-footage", "enabled": true,
     "prefix": "cam/", "tags": {"keep": "no"}, "size_gt": 0, "size_lt": null,  # the filter
     "days": 30, "date": null,            # Expiration: one of the two, or neither
     "noncurrent_days": 7,                # NoncurrentVersionExpiration, or null
     "abort_days": 2}                     # AbortIncompleteMultipartUpload, or null

An object expires `days` after it was written, rounded up to the next midnight UTC (as S3
rounds), or at `date` (a midnight UTC), whichever the rule says; a noncurrent version
`noncurrent_days` after it stopped being current, rounded the same way.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["DAY_S", "matches", "expires_at", "noncurrent_expires_at", "abort_after_s", "midnight_after"]

DAY_S = 86400


def midnight_after(seconds: float) -> float:
    """The first midnight UTC at or after ``seconds``."""
    return math.ceil(seconds / DAY_S) * DAY_S


def matches(rule: Mapping[str, Any], key: str, size: int, tags: Mapping[str, str]) -> bool:
    """Whether an object falls under the rule's filter (an enabled rule's)."""
    if not rule.get("enabled"):
        return False
    if not key.startswith(rule.get("prefix") or ""):
        return False
    if any(tags.get(name) != value for name, value in (rule.get("tags") or {}).items()):
        return False
    if rule.get("size_gt") is not None and not size > rule["size_gt"]:
        return False
    return rule.get("size_lt") is None or size < rule["size_lt"]


def expires_at(rule: Mapping[str, Any], written: float) -> float | None:
    """When a current object written at ``written`` expires under the rule, if it does."""
    if rule.get("days") is not None:
        return midnight_after(written + rule["days"] * DAY_S)
    if rule.get("date") is not None:
        return float(rule["date"])
    return None


def noncurrent_expires_at(rule: Mapping[str, Any], superseded: float) -> float | None:
    """When a version that stopped being current at ``superseded`` expires, if it does."""
    if rule.get("noncurrent_days") is None:
        return None
    return midnight_after(superseded + rule["noncurrent_days"] * DAY_S)


def abort_after_s(rule: Mapping[str, Any]) -> float | None:
    """How old an unfinished multipart upload under the rule may get, if the rule says."""
    return None if rule.get("abort_days") is None else rule["abort_days"] * DAY_S
