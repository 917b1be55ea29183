"""Canned access control lists: who besides the owning account may read or write.

Four canned ACLs, with S3's meaning (Swift's container read ACL `.r:*` is public-read):
    private              the owner only
    public-read          anyone, even without credentials, may read
    public-read-write    anyone may read and write
    authenticated-read   any user of the cluster may read
A bucket's ACL governs listing it and writing into it; an object's ACL governs reading it.
"""

from __future__ import annotations

import enum

__all__ = ["CANNED_ACLS", "Access", "acl_grants", "DEFAULT_ACL"]

CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read")
DEFAULT_ACL = "private"


class Access(enum.Enum):
    READ = "read"
    WRITE = "write"


def acl_grants(acl: str, access: Access, authenticated: bool) -> bool:
    """Does `acl` let a requester who does not own the resource have `access`?"""
    if acl == "public-read-write":
        return True
    if acl == "public-read":
        return access is Access.READ
    if acl == "authenticated-read":
        return access is Access.READ and authenticated
    return False
