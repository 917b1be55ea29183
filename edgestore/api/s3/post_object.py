"""Browser uploads: POST Object, an HTML form (multipart/form-data) posted to the bucket.

The form carries the key (`${filename}` stands for the file's name), a base64 JSON policy
(an expiration and the conditions every other field must meet), and its signature — SigV4
(`x-amz-algorithm`, `x-amz-credential`, `x-amz-date`, `x-amz-signature`: HMAC-SHA256 of the
policy with the signing key of that credential) or SigV2 (`AWSAccessKeyId`, `signature`:
HMAC-SHA1) — as boto3's generate_presigned_post and minio's presigned_post_policy make
them; or no policy at all, for a bucket anonymous users may write. Fields after the file
are ignored, as S3 does; the file streams into the object store like any PUT body, its size
held to the policy's content-length-range before anything is committed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any, AsyncIterator
from urllib.parse import quote, urlencode

from aiohttp import BodyPartReader, web

from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import (
    AccessDenied,
    EntityTooLarge,
    EntityTooSmall,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    KeyTooLongError,
    MetadataTooLarge,
    SignatureDoesNotMatch,
)
from edgestore.api.s3.objects import MAX_USER_METADATA_BYTES, STORED_HEADERS
from edgestore.api.s3.sigv4 import derive_signing_key, hmac_sha256_hex
from edgestore.api.s3.xml import document, element, xml_response
from edgestore.model.acl import CANNED_ACLS, DEFAULT_ACL, Access
from edgestore.model.users import User

__all__ = ["is_post_object", "post_object"]

MAX_FIELD_BYTES = 20 * 1024     # one form field (the policy is the largest)
MAX_FIELDS_BYTES = 64 * 1024    # all the fields before the file
MAX_KEY_BYTES = 1024
READ_CHUNK = 256 * 1024
# Fields no condition needs to name (S3: the signature's own, the file, x-ignore-*).
_UNCHECKED = {"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"}


def is_post_object(req: S3Request) -> bool:
    return req.http.method == "POST" and req.key is None and \
        req.http.headers.get("Content-Type", "").lower().startswith("multipart/form-data")


class _Form:
    """The fields before the file (names lower-cased, as S3 compares them) and the file."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.file: BodyPartReader | None = None
        self.filename = ""


async def _read_form(http: web.Request) -> _Form:
    form = _Form()
    total = 0
    reader = await http.multipart()
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader) or not part.name:
            raise InvalidArgument("The form has a part without a name.", ArgumentName="form")
        name = part.name.lower()
        if name == "file":
            form.file, form.filename = part, part.filename or ""
            break
        value = await part.read(decode=False)
        total += len(value)
        if len(value) > MAX_FIELD_BYTES or total > MAX_FIELDS_BYTES:
            raise InvalidArgument(f"The form field {name} is too large.", ArgumentName=name)
        try:
            form.fields[name] = value.decode()
        except UnicodeDecodeError:
            raise InvalidArgument(f"The form field {name} is not UTF-8.", ArgumentName=name) from None
    if form.file is None:
        raise InvalidArgument("POST requires exactly one file upload per request.", ArgumentName="file",
                              ArgumentValue="0")
    return form


def _denied(why: str) -> AccessDenied:
    return AccessDenied(f"Invalid according to Policy: {why}")


async def _signer(req: S3Request, fields: dict[str, str]) -> User:
    """The user whose secret signed the policy (SigV4 or SigV2)."""
    policy = fields["policy"]
    if "x-amz-signature" in fields:
        if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
            raise InvalidArgument("Only AWS4-HMAC-SHA256 is supported.", ArgumentName="x-amz-algorithm")
        parts = fields.get("x-amz-credential", "").split("/")
        if len(parts) < 5 or parts[-1] != "aws4_request" or parts[-2] != "s3":
            raise InvalidArgument("Invalid credential.", ArgumentName="x-amz-credential")
        access_key, date, region = "/".join(parts[:-4]), parts[-4], parts[-3]
        user = await req.services.users.get(access_key)
        if user is None:
            raise InvalidAccessKeyId(AWSAccessKeyId=access_key)
        expected = hmac_sha256_hex(derive_signing_key(user.secret_key, date, region), policy)
        given = fields["x-amz-signature"]
    elif "signature" in fields and "awsaccesskeyid" in fields:
        user = await req.services.users.get(fields["awsaccesskeyid"])
        if user is None:
            raise InvalidAccessKeyId(AWSAccessKeyId=fields["awsaccesskeyid"])
        expected = base64.b64encode(hmac.new(user.secret_key.encode(), policy.encode(), hashlib.sha1).digest()).decode()
        given = fields["signature"]
    else:
        raise InvalidArgument("A policy needs a signature.", ArgumentName="x-amz-signature")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureDoesNotMatch()
    return user


def _policy(raw: str) -> dict[str, Any]:
    try:
        policy = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        raise InvalidArgument("Invalid Policy: Invalid JSON.", ArgumentName="policy") from None
    if not isinstance(policy, dict) or not isinstance(policy.get("conditions"), list) \
            or not isinstance(policy.get("expiration"), str):
        raise InvalidArgument("Invalid Policy: it needs an expiration and conditions.", ArgumentName="policy")
    try:
        expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument("Invalid Policy: Invalid 'expiration' value.", ArgumentName="policy") from None
    if (expires if expires.tzinfo else expires.replace(tzinfo=UTC)) < datetime.now(UTC):
        raise _denied("Policy expired.")
    return policy


def _check_conditions(conditions: list[Any], values: dict[str, str]) -> tuple[int, int] | None:
    """Hold ``values`` (the fields, and the bucket) to the policy's conditions; every field
    must be named by one. Returns the content-length-range, if the policy gives one."""
    named: set[str] = set()
    size_range = None
    for condition in conditions:
        if isinstance(condition, dict) and len(condition) == 1:
            [(name, wanted)] = condition.items()
            op, name = "eq", str(name).lower()
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] == "content-length-range":
            try:
                size_range = (int(condition[1]), int(condition[2]))
            except (TypeError, ValueError):
                raise InvalidArgument("Invalid Policy: Invalid content-length-range.", ArgumentName="policy") from None
            continue
        elif isinstance(condition, list) and len(condition) == 3 \
                and str(condition[0]).lower() in ("eq", "starts-with") and str(condition[1]).startswith("$"):
            op, name, wanted = str(condition[0]).lower(), str(condition[1])[1:].lower(), condition[2]
        else:
            raise InvalidArgument(f"Invalid Policy: Invalid condition {json.dumps(condition)[:100]}.",
                                  ArgumentName="policy")
        named.add(name)
        value, wanted = values.get(name, ""), str(wanted)
        if op == "eq" and value != wanted:
            raise _denied(f'Policy Condition failed: ["eq", "${name}", "{wanted}"]')
        if op == "starts-with" and not all(v.strip().startswith(wanted) for v in
                                           (value.split(",") if name == "content-type" else [value])):
            raise _denied(f'Policy Condition failed: ["starts-with", "${name}", "{wanted}"]')
    extra = sorted(n for n in values if n not in named and n not in _UNCHECKED and n != "bucket"
                   and not n.startswith("x-ignore-"))
    if extra:
        raise _denied(f"Extra input fields: {', '.join(extra)}")
    return size_range


def _attrs(fields: dict[str, str]) -> dict[str, Any]:
    meta = {name[len("x-amz-meta-"):]: value for name, value in fields.items() if name.startswith("x-amz-meta-")}
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_USER_METADATA_BYTES:
        raise MetadataTooLarge(MaxSizeAllowed=str(MAX_USER_METADATA_BYTES))
    acl = fields.get("acl", DEFAULT_ACL).strip().lower()
    if acl not in CANNED_ACLS:
        raise InvalidArgument(ArgumentName="acl", ArgumentValue=acl[:64])
    return {"content_type": fields.get("content-type") or "binary/octet-stream", "meta": meta,
            "headers": {name: fields[name] for name in STORED_HEADERS if fields.get(name)}, "acl": acl}


async def _file_body(file: BodyPartReader, size_range: tuple[int, int] | None) -> AsyncIterator[bytes]:
    size = 0
    while chunk := await file.read_chunk(READ_CHUNK):
        size += len(chunk)
        if size_range is not None and size > size_range[1]:
            raise EntityTooLarge(ProposedSize=str(size), MaxSizeAllowed=str(size_range[1]))
        yield chunk
    if size_range is not None and size < size_range[0]:
        raise EntityTooSmall(ProposedSize=str(size), MinSizeAllowed=str(size_range[0]))


async def post_object(req: S3Request) -> web.StreamResponse:
    form = await _read_form(req.http)
    fields = form.fields
    if "key" not in fields:
        raise InvalidArgument("Bucket POST must contain a field named 'key'.", ArgumentName="key")
    size_range = None
    if "policy" in fields:
        req.user = await _signer(req, fields)
        size_range = _check_conditions(_policy(fields["policy"])["conditions"],
                                       {**fields, "bucket": req.bucket_name or ""})
    elif req.user is None and any(name in fields for name in ("x-amz-signature", "signature")):
        raise InvalidArgument("A signature needs its policy.", ArgumentName="policy")
    key = fields["key"].replace("${filename}", form.filename)
    if not key:
        raise InvalidArgument("User key must have a length greater than 0.", ArgumentName="key")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise KeyTooLongError()
    bucket = await req.bucket()
    # (a bucket policy judges the object the form names, not the bucket it is posted to)
    if not req.may(bucket.account, bucket.acl, Access.WRITE, req.policy_effect(bucket, "s3:PutObject", key)):
        raise AccessDenied()
    if "tagging" in fields:
        raise InvalidRequest("Tagging in a POST form is not supported; tag the object afterwards.")
    assert form.file is not None
    info = await req.services.objects.put(bucket.account, bucket.name, key, _file_body(form.file, size_range),
                                          _attrs(fields), versioning=bucket.versioning)
    etag = f'"{info.etag}"'
    headers = {"ETag": etag, "Location": f"/{quote(bucket.name)}/{quote(key)}"}
    if info.version_id is not None:
        headers["x-amz-version-id"] = info.version_id
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect:
        joiner = "&" if "?" in redirect else "?"
        headers["Location"] = redirect + joiner + urlencode({"bucket": bucket.name, "key": key, "etag": etag})
        return web.Response(status=303, headers=headers)
    status = fields.get("success_action_status", "204")
    if status == "201":
        body = document("PostResponse", [element("Location", headers["Location"]), element("Bucket", bucket.name),
                                         element("Key", key), element("ETag", etag)])
        response = xml_response(body, 201)
        response.headers.update(headers)
        return response
    return web.Response(status=200 if status == "200" else 204, headers=headers)
