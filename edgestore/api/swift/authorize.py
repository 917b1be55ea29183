"""Who may do what in a Swift account (TempAuth's rules).

The account's own users and admins may do everything, and so may whom the account's ACL
(X-Account-Access-Control) makes its admins; its read-write users may do everything but
change the account itself, its read-only users list and read. Anyone else — another
account's user, or an anonymous caller without a token — is let in only by the addressed
container's ACLs: X-Container-Read for reading objects and (with a user grant or
`.rlistings`) listing the container, X-Container-Write for writing objects. Account
operations and container PUT/POST/DELETE stay the owner's. A caller who is turned away
gets 401 when anonymous, 403 otherwise. A temp URL is authorised by its signature
(tempurl.py) for its account, or for one container when signed with a container key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgestore.api.swift.acl import parse_acl, referrer_allowed
from edgestore.api.swift.errors import SwiftError
from edgestore.model.buckets import Buckets
from edgestore.model.users import User

__all__ = ["Op", "Caller", "operation", "authorize"]


class Op(enum.Enum):
    READ = "read"    # object GET/HEAD, the source of a copy
    LIST = "list"    # container GET/HEAD (and the account's, for account ACLs)
    WRITE = "write"  # object PUT/POST/DELETE, the destination of a copy
    OWNER = "owner"  # everything on the account itself, container PUT/POST/DELETE


@dataclass(frozen=True)
class Caller:
    user: User | None  # None: anonymous, or a temp URL
    # A temp URL's reach: "" for the whole account (an account key signed it), else the
    # one container whose key signed it. None when the request is not a temp URL.
    temp_url_scope: str | None = None
    # (account, level) an account ACL grants this caller in the addressed account, if any.
    granted: tuple[str, str] | None = None

    def owns(self, account: str) -> bool:
        """The account's own users, admins, and those its ACL makes its admins."""
        return self.user is not None and (self.user.admin or self.user.account == account
                                          or self.granted == (account, "admin"))

    @property
    def groups(self) -> frozenset[str]:
        """The ACL groups the caller belongs to, as TempAuth names them."""
        if self.user is None:
            return frozenset()
        return frozenset({self.user.account, self.user.swift_name})


def operation(method: str, container: str | None, obj: str | None) -> Op:
    """What a request needs. COPY reads its addressed object; the copy handler checks
    the write on its destination (and a PUT with X-Copy-From the read of its source)."""
    if container is None:
        return Op.LIST if method in ("GET", "HEAD") else Op.OWNER
    if obj is None:
        return Op.LIST if method in ("GET", "HEAD") else Op.OWNER
    return Op.READ if method in ("GET", "HEAD", "COPY") else Op.WRITE


async def authorize(buckets: Buckets, caller: Caller, account: str, container: str | None, op: Op,
                    referer: str | None) -> None:
    """Return if `caller` may do `op` on `container` (None: the account); raise 401/403."""
    if caller.owns(account):
        return
    if caller.temp_url_scope is not None:
        if op is Op.OWNER or container is None or caller.temp_url_scope not in ("", container):
            raise SwiftError(401)
        return
    denied = SwiftError(403 if caller.user is not None else 401)
    if caller.granted is not None and caller.granted[0] == account:
        level = caller.granted[1]  # (admin was let in as an owner above)
        if level == "read-write" and (container is not None or op is Op.LIST):
            return  # everything in the account but the account's own settings
        if level == "read-only" and op in (Op.READ, Op.LIST):
            return
    if op is Op.OWNER or container is None:
        raise denied
    bucket = await buckets.lookup(container)
    if bucket is None or bucket.account != account:
        raise denied  # as Swift: no container, no ACL, nothing to grant
    acl = parse_acl(bucket.write_acl if op is Op.WRITE else bucket.read_acl)
    if op is not Op.WRITE and referrer_allowed(referer, acl.referrers):
        # TempAuth stops here: a referrer-allowed caller lists only with .rlistings.
        if op is Op.READ or ".rlistings" in acl.groups:
            return
        raise denied
    if caller.groups & acl.groups:
        return
    raise denied
