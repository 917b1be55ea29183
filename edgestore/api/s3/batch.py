"""DeleteObjects: up to 1000 keys of one bucket in one request (and one replicated write)."""

from __future__ import annotations

import base64
import hashlib
from xml.etree import ElementTree

from aiohttp import web

from edgestore.api.s3.checksums import new_checksum, parse_requested, verify
from edgestore.api.s3.context import MAX_KEY_BYTES, S3Request
from edgestore.api.s3.errors import BadDigest, MalformedXML
from edgestore.api.s3.xml import document, element, xml_response
from edgestore.model.acl import Access
from edgestore.streams import BodyTooLarge, read_limited

MAX_KEYS = 1000
MAX_BODY = 2 * 1024 * 1024


def _check_integrity(req: S3Request, body: bytes) -> None:
    """S3 wants DeleteObjects protected by Content-MD5 or a checksum; verify whichever came."""
    content_md5 = req.http.headers.get("Content-MD5")
    if content_md5 is not None and base64.b64encode(hashlib.md5(body).digest()).decode() != content_md5.strip():
        raise BadDigest()
    requested = parse_requested(req.http.headers)
    if requested is not None and requested.location == "header" and requested.expected_b64:
        checksum = new_checksum(requested.algorithm)
        checksum.update(body)
        verify(requested.algorithm, requested.expected_b64, checksum)


def _parse(body: bytes) -> tuple[list[str], bool]:
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise MalformedXML()  # no entity expansion, ever
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise MalformedXML() from None
    if root.tag.rsplit("}", 1)[-1] != "Delete":
        raise MalformedXML()
    keys: list[str] = []
    quiet = False
    for child in root:
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "Quiet":
            quiet = (child.text or "").strip().lower() == "true"
        elif tag == "Object":
            key_el = next((c for c in child if c.tag.rsplit("}", 1)[-1] == "Key"), None)
            if key_el is None or key_el.text is None:
                raise MalformedXML()
            keys.append(key_el.text)
        else:
            raise MalformedXML()
    if not keys or len(keys) > MAX_KEYS:
        raise MalformedXML()
    return keys, quiet


async def delete_objects(req: S3Request) -> web.StreamResponse:
    bucket = await req.bucket_for(Access.WRITE)
    try:
        body = await read_limited(req.http.content, MAX_BODY)
    except BodyTooLarge:
        raise MalformedXML() from None
    _check_integrity(req, body)
    keys, quiet = _parse(body)
    valid = [k for k in dict.fromkeys(keys) if len(k.encode()) <= MAX_KEY_BYTES]
    await req.services.objects.delete_many(bucket.account, bucket.name, valid)
    parts = []
    for key in keys:
        if len(key.encode()) > MAX_KEY_BYTES:
            parts.append(f"<Error>{element('Key', key)}{element('Code', 'KeyTooLongError')}"
                         f"{element('Message', 'Your key is too long')}</Error>")
        elif not quiet:
            parts.append(f"<Deleted>{element('Key', key)}</Deleted>")
    return xml_response(document("DeleteResult", parts))
