"""Swift container ACLs in TempAuth's syntax (X-Container-Read / X-Container-Write).

An ACL is a comma-separated list of items:
    .r:<host>      referrer designations: `*` (any referrer, also none), a host, or a
    .r:-<host>     domain with a leading `.` (or `*.`); `-` denies; applied in order
    .rlistings     referrer-allowed callers may also list the container
    account:user   that user
    account        every user of that account
`.ref`, `.referer` and `.referrer` are long forms of `.r`. Referrers are not allowed in a
write ACL. Any other `.xxx:` designator is an error; other items are group names that
match no user here (TempAuth's extra groups are not modelled) and are kept as given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlparse

__all__ = ["clean_acl", "ParsedAcl", "parse_acl", "referrer_allowed", "ACCOUNT_LEVELS", "parse_account_acl",
           "format_account_acl", "account_level"]

_REFERRER_DESIGNATORS = (".r", ".ref", ".referer", ".referrer")


def clean_acl(header: str, value: str) -> str:
    """The ACL normalised as Swift stores it (`.referrer : *` -> `.r:*`, no blanks or empty
    items); ValueError with the reason when it is malformed."""
    items = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        designator, colon, rest = (part.strip() for part in item.partition(":"))
        if not colon or not designator.startswith("."):
            items.append(item)
            continue
        if designator not in _REFERRER_DESIGNATORS:
            raise ValueError(f"Unknown designator {designator!r} in ACL: {item!r}")
        if "write" in header.lower():
            raise ValueError(f"Referrers not allowed in write ACL: {item!r}")
        negate = rest.startswith("-")
        host = rest[1:].strip() if negate else rest
        if host != "*" and host.startswith("*"):
            host = host[1:].strip()
        if not host or host == ".":
            raise ValueError(f"No host/domain value after referrer designation in ACL: {item!r}")
        items.append(f".r:{'-' if negate else ''}{host}")
    return ",".join(items)


@dataclass(frozen=True)
class ParsedAcl:
    referrers: tuple[str, ...]  # without ".r:", a leading "-" for denials
    groups: frozenset[str]


def parse_acl(acl: str) -> ParsedAcl:
    """A stored (cleaned) ACL split into referrer rules and groups."""
    items = [item for item in acl.split(",") if item]
    return ParsedAcl(tuple(item[3:] for item in items if item.startswith(".r:")),
                     frozenset(item for item in items if not item.startswith(".r:")))


def _host_matches(rule: str, host: str) -> bool:
    return rule == host or (rule.startswith(".") and host.endswith(rule))


def referrer_allowed(referer: str | None, rules: tuple[str, ...]) -> bool:
    """Do the referrer rules, applied in order, let a request with this Referer in? A
    request without one counts as host "unknown", which only `*` admits."""
    try:
        host = urlparse(referer or "").hostname or "unknown"
    except ValueError:
        host = "unknown"
    allowed = False
    for rule in rules:
        if rule.startswith("-"):
            if _host_matches(rule[1:], host):
                allowed = False
        elif rule == "*" or _host_matches(rule, host):
            allowed = True
    return allowed


# Account ACLs (X-Account-Access-Control, TempAuth's JSON form): levels, strongest first.
ACCOUNT_LEVELS = ("admin", "read-write", "read-only")


def parse_account_acl(value: str) -> dict[str, list[str]]:
    """X-Account-Access-Control: {"admin": [...], "read-write": [...], "read-only": [...]},
    each naming "account" or "account:user"; an empty value removes the ACL. ValueError
    for anything else."""
    if not value.strip():
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        raise ValueError("Invalid JSON in X-Account-Access-Control") from None
    if not isinstance(data, dict) or set(data) - set(ACCOUNT_LEVELS) or not all(
            isinstance(names, list) and all(isinstance(n, str) and n for n in names) for names in data.values()):
        raise ValueError("Invalid X-Account-Access-Control: levels are admin, read-write and read-only, "
                         "each a list of \"account\" or \"account:user\"")
    return {level: list(names) for level, names in data.items() if names}


def format_account_acl(access: dict[str, list[str]]) -> str:
    return json.dumps(access, separators=(",", ":"), sort_keys=True)


def account_level(access: dict[str, list[str]], groups: frozenset[str]) -> str | None:
    """The strongest level the ACL gives someone in ``groups`` (TempAuth's groups), if any."""
    return next((level for level in ACCOUNT_LEVELS if groups & set(access.get(level, ()))), None)
