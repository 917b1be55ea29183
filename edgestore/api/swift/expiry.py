"""X-Delete-At / X-Delete-After on object PUT, POST and copies, checked as Swift checks them.

X-Delete-After (seconds from now) wins over X-Delete-At (unix seconds) and is turned into
one. Both must be integers and name a time after now; Swift's 400 bodies are kept, since
clients show them. A POST replaces the expiry along with the metadata: a POST without
either header (as with `X-Remove-Delete-At:`) makes the object permanent, as in Swift.
"""

from __future__ import annotations

import time
from typing import Mapping

from edgestore.api.swift.errors import SwiftError
from edgestore.model.expiry import MAX_DELETE_AT
from edgestore.model.objects import ObjectInfo

__all__ = ["requested_delete_at", "expiry_headers"]


def _integer(headers: Mapping[str, str], name: str) -> int:
    try:
        return int(headers[name])
    except ValueError:
        raise SwiftError(400, f"Non-integer {name}") from None


def requested_delete_at(headers: Mapping[str, str]) -> int | None:
    """The delete_at a request asks for, or None if it sends neither header."""
    now = time.time()
    if "X-Delete-After" in headers:
        delete_at = min(int(now + _integer(headers, "X-Delete-After")), MAX_DELETE_AT)
        if delete_at <= now:
            raise SwiftError(400, "X-Delete-After in past")
        return delete_at
    if "X-Delete-At" in headers:
        delete_at = min(max(_integer(headers, "X-Delete-At"), 0), MAX_DELETE_AT)
        if delete_at <= now:
            raise SwiftError(400, "X-Delete-At in past")
        return delete_at
    return None


def expiry_headers(info: ObjectInfo) -> dict[str, str]:
    """X-Delete-At for GET and HEAD answers, when the object expires."""
    return {"X-Delete-At": str(info.delete_at)} if info.delete_at is not None else {}
