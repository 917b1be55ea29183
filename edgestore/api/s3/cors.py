"""Bucket CORS: Put/Get/DeleteBucketCors, the browsers' preflight (OPTIONS), and the
Access-Control-* headers on the answers to requests that carry an Origin.

A rule allows some origins (each may hold one `*` wildcard) to use some methods (GET, PUT,
HEAD, POST, DELETE) with some request headers (patterns, case-insensitive, one `*` each),
and names the response headers the browser may show the page and how long it may cache a
preflight. The first rule that matches a request's origin, method and (for a preflight)
requested headers decides; with none, a preflight is 403 and an actual request gets no
CORS headers (the browser then withholds the answer from the page). Rules are kept in
the bucket record, so every node answers alike (within the bucket cache's few seconds).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edgestore.api.s3.bucket_settings import BucketSetting, parse_rules
from edgestore.api.s3.context import S3Request
from edgestore.api.s3.errors import InvalidRequest, MalformedXML, S3Error
from edgestore.api.s3.xml import decimal, document, element, local_name
from edgestore.model.buckets import Bucket, Buckets

__all__ = ["SETTING", "preflight", "actual_request_headers"]

METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
MAX_RULES = 100
MAX_BODY = 64 * 1024
MAX_ID_CHARS = 255
# A rule's fields: XML element -> the key it is kept under (lists of strings).
_LISTS = {"AllowedOrigin": "origins", "AllowedMethod": "methods", "AllowedHeader": "headers",
          "ExposeHeader": "expose"}


class AccessForbidden(S3Error):
    code = "AccessForbidden"
    status = 403
    message = "CORSResponse: This CORS request is not allowed."


class _CorsBadRequest(S3Error):
    code = "BadRequest"
    status = 400
    message = "Insufficient information. Origin request header needed."


# -- the configuration ---------------------------------------------------------------

def _rule(xml_rule: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {key: [] for key in _LISTS.values()}
    for child in xml_rule:
        tag, text = local_name(child), (child.text or "").strip()
        if tag in _LISTS:
            rule[_LISTS[tag]].append(text)
        elif tag == "MaxAgeSeconds":
            seconds = decimal(text)
            if seconds is None:
                raise MalformedXML()
            rule["max_age"] = seconds
        elif tag == "ID":
            if len(text) > MAX_ID_CHARS:
                raise InvalidRequest(f"The ID of a CORS rule is longer than {MAX_ID_CHARS} characters.")
            rule["id"] = text
        else:
            raise MalformedXML()
    if not rule["origins"] or not rule["methods"]:
        raise MalformedXML()
    for method in rule["methods"]:
        if method not in METHODS:
            raise InvalidRequest(f"Found unsupported HTTP method in CORS config. Unsupported method is {method}")
    for kind in ("origins", "headers"):
        for pattern in rule[kind]:
            if pattern.count("*") > 1:
                raise InvalidRequest(f'{"AllowedOrigin" if kind == "origins" else "AllowedHeader"} "{pattern}" '
                                     "can not have more than one wildcard.")
    return rule


def parse_configuration(body: bytes) -> tuple[dict[str, Any], ...]:
    return parse_rules(body, "CORSConfiguration", "CORSRule", MAX_RULES, "CORS", _rule)


def render_configuration(rules: tuple[dict[str, Any], ...]) -> bytes:
    parts = []
    for rule in rules:
        fields = [element("ID", rule["id"])] if "id" in rule else []
        for tag, key in _LISTS.items():
            fields += [element(tag, value) for value in rule[key]]
        if "max_age" in rule:
            fields.append(element("MaxAgeSeconds", rule["max_age"]))
        parts.append(f"<CORSRule>{''.join(fields)}</CORSRule>")
    return document("CORSConfiguration", parts)


SETTING = BucketSetting("cors", lambda bucket: bucket.cors, parse_configuration, render_configuration,
                        Buckets.set_cors, MAX_BODY)


# -- matching requests ---------------------------------------------------------------

def _matches(pattern: str, value: str, ignore_case: bool) -> bool:
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    if "*" not in pattern:
        return pattern == value
    head, _, tail = pattern.partition("*")
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


def _rule_for(rules: tuple[dict[str, Any], ...], origin: str, method: str,
              headers: list[str]) -> dict[str, Any] | None:
    for rule in rules:
        if method not in rule["methods"]:
            continue
        if not any(_matches(pattern, origin, ignore_case=False) for pattern in rule["origins"]):
            continue
        if all(any(_matches(p, h, ignore_case=True) for p in rule["headers"]) for h in headers):
            return rule
    return None


def _answer_headers(rule: dict[str, Any], origin: str) -> dict[str, str]:
    anyone = rule["origins"] == ["*"]
    headers = {"Access-Control-Allow-Origin": "*" if anyone else origin,
               "Access-Control-Allow-Methods": ", ".join(rule["methods"]),
               "Vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"}
    if not anyone:
        headers["Access-Control-Allow-Credentials"] = "true"
    if rule["expose"]:
        headers["Access-Control-Expose-Headers"] = ", ".join(rule["expose"])
    if "max_age" in rule:
        headers["Access-Control-Max-Age"] = str(rule["max_age"])
    return headers


async def preflight(req: S3Request) -> web.StreamResponse:
    """OPTIONS: may a page from Origin send this method (and these headers)? Browsers
    send it without credentials; only the bucket's rules decide."""
    origin = req.http.headers.get("Origin")
    method = req.http.headers.get("Access-Control-Request-Method")
    if not origin:
        raise _CorsBadRequest()
    if not method:
        raise _CorsBadRequest("Invalid Access-Control-Request-Method: null")
    assert req.bucket_name is not None
    bucket = await req.services.buckets.lookup(req.bucket_name)
    if bucket is None or bucket.cors is None:
        raise AccessForbidden("CORSResponse: CORS is not enabled for this bucket.", Method=method,
                              ResourceType="BUCKET" if req.key is None else "OBJECT")
    asked = [h.strip() for h in req.http.headers.get("Access-Control-Request-Headers", "").split(",") if h.strip()]
    rule = _rule_for(bucket.cors, origin, method, asked)
    if rule is None:
        raise AccessForbidden("CORSResponse: This CORS request is not allowed. This is usually because the "
                              "evaluation of Origin, request method / Access-Control-Request-Method or "
                              "Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
                              Method=method, ResourceType="BUCKET" if req.key is None else "OBJECT")
    headers = _answer_headers(rule, origin)
    if asked:
        headers["Access-Control-Allow-Headers"] = ", ".join(asked)
    return web.Response(status=200, headers=headers)


def actual_request_headers(bucket: Bucket | None, origin: str, method: str) -> dict[str, str]:
    """The CORS headers for the answer to a request from ``origin`` (none if no rule allows it)."""
    if bucket is None or bucket.cors is None:
        return {}
    rule = _rule_for(bucket.cors, origin, method, [])
    return _answer_headers(rule, origin) if rule is not None else {}
