"""Canned ACLs in S3's dress: the x-amz-acl header, and Get/Put Bucket/Object Acl.

A PutBucketAcl/PutObjectAcl body (an AccessControlPolicy, as s3cmd and others send) is
accepted when its grants are exactly those of a canned ACL; any other grant set is
answered NotImplemented rather than silently stored as something else.
"""

from __future__ import annotations

from aiohttp import web

from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import InvalidArgument, MalformedXML
from edgestore.api.s3.errors import NotImplemented as S3NotImplemented
from edgestore.api.s3.versions_addressed import owned_version
from edgestore.api.s3.xml import document, element, owner_xml, parse_xml, xml_response
from edgestore.model.acl import CANNED_ACLS, DEFAULT_ACL
from edgestore.streams import BodyTooLarge, read_limited

__all__ = ["requested_acl", "get_bucket_acl", "put_bucket_acl", "get_object_acl", "put_object_acl"]

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
# The grants, beyond the owner's FULL_CONTROL, that each canned ACL stands for.
_GRANTS: dict[str, frozenset[tuple[str, str]]] = {
    "private": frozenset(),
    "public-read": frozenset({(ALL_USERS, "READ")}),
    "public-read-write": frozenset({(ALL_USERS, "READ"), (ALL_USERS, "WRITE")}),
    "authenticated-read": frozenset({(AUTHENTICATED_USERS, "READ")}),
}
MAX_POLICY_BODY = 64 * 1024


def requested_acl(req: S3Request) -> str:
    """The canned ACL in x-amz-acl (private when absent)."""
    acl = req.http.headers.get("x-amz-acl", DEFAULT_ACL).strip().lower()
    if acl not in CANNED_ACLS:
        if acl in ("bucket-owner-read", "bucket-owner-full-control", "aws-exec-read", "log-delivery-write"):
            return DEFAULT_ACL  # in one account the bucket owner already owns everything
        raise InvalidArgument(ArgumentName="x-amz-acl", ArgumentValue=acl[:64])
    if any(name.lower().startswith("x-amz-grant-") for name in req.http.headers):
        raise S3NotImplemented("Grant headers are not supported; use a canned ACL (x-amz-acl).")
    return acl


def _policy_xml(owner: str, acl: str) -> bytes:
    grants = [f'<Grant><Grantee {XSI} xsi:type="CanonicalUser">{element("ID", owner)}'
              f'{element("DisplayName", owner)}</Grantee><Permission>FULL_CONTROL</Permission></Grant>']
    for uri, permission in sorted(_GRANTS[acl]):
        grants.append(f'<Grant><Grantee {XSI} xsi:type="Group">{element("URI", uri)}</Grantee>'
                      f'{element("Permission", permission)}</Grant>')
    return document("AccessControlPolicy",
                    owner_xml(owner) + "<AccessControlList>" + "".join(grants) + "</AccessControlList>")


async def _acl_from_request(req: S3Request) -> str:
    """x-amz-acl, or the canned ACL an AccessControlPolicy body amounts to."""
    try:
        body = await read_limited(req.http.content, MAX_POLICY_BODY)
    except BodyTooLarge:
        raise MalformedXML() from None
    if not body.strip():
        return requested_acl(req)
    root = parse_xml(body, "AccessControlPolicy")
    grants = set()
    for grant in root.iter():
        if grant.tag.rsplit("}", 1)[-1] != "Grant":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: child for child in grant}
        permission = (fields["Permission"].text or "").strip() if "Permission" in fields else ""
        grantee = fields.get("Grantee")
        uri = next((c.text or "" for c in grantee or [] if c.tag.rsplit("}", 1)[-1] == "URI"), None)
        if uri is None:
            if permission != "FULL_CONTROL":
                raise S3NotImplemented("Grants to individual users are not supported; use a canned ACL.")
            continue  # the owner's own grant
        grants.add((uri.strip(), permission))
    for acl, wanted in _GRANTS.items():
        if grants == wanted:
            return acl
    raise S3NotImplemented("Only grant sets equal to a canned ACL are supported.")


async def get_bucket_acl(req: S3Request) -> web.StreamResponse:
    bucket = await req.own_bucket()
    return xml_response(_policy_xml(bucket.account, bucket.acl))


async def put_bucket_acl(req: S3Request) -> web.StreamResponse:
    bucket = await req.own_bucket()
    await req.services.buckets.set_acl(bucket, await _acl_from_request(req))
    return web.Response(status=200)


async def get_object_acl(req: S3Request) -> web.StreamResponse:
    bucket, info = await owned_version(req)
    return xml_response(_policy_xml(bucket.account, info.acl))


async def put_object_acl(req: S3Request) -> web.StreamResponse:
    bucket, info = await owned_version(req)
    await req.services.objects.update(bucket.name, info, acl=await _acl_from_request(req))
    return web.Response(status=200)
