"""User metadata headers (X-{Account,Container,Object}-Meta-*): reading them from a
request, Swift's limits on them, and how a POST merges them into what is stored.

Names are kept lower-case (HTTP header names are case-insensitive, and S3 stores its
user metadata the same way), so both APIs and every client agree on one spelling.
"""

from __future__ import annotations

from typing import Mapping

from multidict import CIMultiDictProxy

from edgestore.api.swift.errors import SwiftError

__all__ = ["META_LIMITS", "sent_meta", "check_meta", "merge_meta", "meta_headers"]

META_LIMITS = {"max_meta_name_length": 128, "max_meta_value_length": 256, "max_meta_count": 90,
               "max_meta_overall_size": 4096}


def sent_meta(headers: CIMultiDictProxy[str], kind: str, removals: bool = False) -> dict[str, str]:
    """The X-<kind>-Meta-* a request sends, names lower-cased and without the prefix. With
    `removals`, X-Remove-<kind>-Meta-* are included with an empty value (which removes)."""
    prefix, remove_prefix = f"x-{kind}-meta-", f"x-remove-{kind}-meta-"
    meta: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(prefix):
            meta[lower[len(prefix):]] = value
        elif removals and lower.startswith(remove_prefix):
            meta.setdefault(lower[len(remove_prefix):], "")
    check_meta(meta, prefix)
    return meta


def check_meta(meta: Mapping[str, str], prefix: str) -> None:
    """Swift's limits (constraints.check_metadata): 400 with its wording when one is exceeded."""
    if "" in meta:
        raise SwiftError(400, "Metadata name cannot be empty")
    if len(meta) > META_LIMITS["max_meta_count"]:
        raise SwiftError(400, f"Too many metadata items; max {META_LIMITS['max_meta_count']}")
    for name, value in meta.items():
        if len(name) > META_LIMITS["max_meta_name_length"]:
            raise SwiftError(400, f"Metadata name too long: {prefix}{name[:64]}")
        if len(value) > META_LIMITS["max_meta_value_length"]:
            raise SwiftError(400, f"Metadata value longer than {META_LIMITS['max_meta_value_length']}: "
                                  f"{prefix}{name[:64]}")
    if sum(len(k) + len(v) for k, v in meta.items()) > META_LIMITS["max_meta_overall_size"]:
        raise SwiftError(400, f"Total metadata too large; max {META_LIMITS['max_meta_overall_size']}")


def merge_meta(stored: Mapping[str, str], sent: Mapping[str, str], prefix: str) -> dict[str, str]:
    """What a POST leaves: the stored items, updated by the sent ones, an empty value
    removing its item. The result is held to the same limits, so repeated POSTs cannot
    grow a record without bound."""
    merged = {**stored, **sent}
    merged = {name: value for name, value in merged.items() if value != ""}
    check_meta(merged, prefix)
    return merged


def meta_headers(meta: Mapping[str, str], kind: str, hidden: tuple[str, ...] = ()) -> dict[str, str]:
    """Response headers for stored metadata, leaving out the `hidden` names."""
    return {f"X-{kind.title()}-Meta-{name}": value for name, value in meta.items() if name not in hidden}
