"""DeleteObjects: up to 1000 keys of one bucket in one request (and one replicated write)."""

from __future__ import annotations

from aiohttp import web

from edgestore.api.s3.checksums import check_small_body
from edgestore.api.s3.context import MAX_KEY_BYTES, S3Request
from edgestore.api.s3.errors import AccessDenied, MalformedXML
from edgestore.api.s3.xml import document, element, local_name, parse_xml, xml_response
from edgestore.model.acl import Access
from edgestore.model.objects import NULL_VERSION
from edgestore.streams import BodyTooLarge, read_limited

MAX_KEYS = 1000
MAX_BODY = 2 * 1024 * 1024


def _parse(body: bytes) -> tuple[list[tuple[str, str | None]], bool]:
    keys: list[tuple[str, str | None]] = []
    quiet = False
    for child in parse_xml(body, "Delete"):
        tag = local_name(child)
        if tag == "Quiet":
            quiet = (child.text or "").strip().lower() == "true"
        elif tag == "Object":
            fields = {local_name(c): c.text for c in child}
            if not fields.get("Key"):
                raise MalformedXML()
            keys.append((str(fields["Key"]), fields.get("VersionId") or None))
        else:
            raise MalformedXML()
    if not keys or len(keys) > MAX_KEYS:
        raise MalformedXML()
    return keys, quiet


def _refused(key: str, code: str, message: str) -> str:
    return f"<Error>{element('Key', key)}{element('Code', code)}{element('Message', message)}</Error>"


async def delete_objects(req: S3Request) -> web.StreamResponse:
    bucket = await req.bucket()
    if bucket.policy is None and not req.may(bucket.account, bucket.acl, Access.WRITE):
        raise AccessDenied()  # (with a policy, each key is judged on its own below)
    try:
        body = await read_limited(req.http.content, MAX_BODY)
    except BodyTooLarge:
        raise MalformedXML() from None
    check_small_body(req.http.headers, body)
    entries, quiet = _parse(body)
    parts = []
    valid = []
    for key, version_id in entries:
        action = "s3:DeleteObject" if version_id is None else "s3:DeleteObjectVersion"
        if len(key.encode()) > MAX_KEY_BYTES:
            parts.append(_refused(key, "KeyTooLongError", "Your key is too long"))
        elif not req.may(bucket.account, bucket.acl, Access.WRITE, req.policy_effect(bucket, action, key)):
            parts.append(_refused(key, "AccessDenied", "Access Denied"))
        else:
            valid.append((key, version_id))
    if bucket.versioning is None and all(v in (None, NULL_VERSION) for _, v in valid):
        # Plain tombstones: all keys share the bucket's partition, so one write does them all.
        await req.services.objects.delete_many(bucket.account, bucket.name, list(dict.fromkeys(k for k, _ in valid)))
        if not quiet:
            parts += [f"<Deleted>{element('Key', key)}</Deleted>" for key, _ in valid]
        return xml_response(document("DeleteResult", parts))
    for key, version_id in valid:
        shown, marker = await req.services.versions.delete(bucket.account, bucket.name, key,
                                                            bucket.versioning, version_id)
        if quiet:
            continue
        fields = element("Key", key)
        if version_id is not None:
            fields += element("VersionId", version_id)
            if marker:
                fields += element("DeleteMarker", True)
        elif marker and shown is not None:
            fields += element("DeleteMarker", True) + element("DeleteMarkerVersionId", shown)
        parts.append(f"<Deleted>{fields}</Deleted>")
    return xml_response(document("DeleteResult", parts))
