"""Put/Get/DeleteBucketLifecycleConfiguration: the XML of lifecycle rules, checked as S3
checks it, kept in the bucket record in model/lifecycle.py's form; the lifecycle job
(jobs/lifecycle.py) applies them.

Built: Expiration (Days or Date), NoncurrentVersionExpiration (NoncurrentDays) and
AbortIncompleteMultipartUpload, with filters by prefix, tags and object size. Transitions
(there is one storage class here), ExpiredObjectDeleteMarker and NewerNoncurrentVersions
answer NotImplemented, so nobody believes such a rule is in force.
"""

from __future__ import annotations

import calendar
import re
import secrets
import time
from typing import Any
from xml.etree import ElementTree

from edgestore.api.s3.bucket_settings import BucketSetting, parse_rules
from edgestore.api.s3.errors import InvalidArgument, InvalidRequest, MalformedXML
from edgestore.api.s3.errors import NotImplemented as S3NotImplemented
from edgestore.api.s3.xml import decimal, document, element, iso8601, local_name
from edgestore.model.buckets import Buckets

__all__ = ["SETTING", "parse_configuration", "render_configuration"]

MAX_RULES = 1000
MAX_BODY = 1024 * 1024
MAX_ID_CHARS = 255
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T00:00:00(?:\.0+)?(?:Z|\+00:00)")


def _only(parent: ElementTree.Element) -> dict[str, ElementTree.Element]:
    """Children by local name; a name given twice is MalformedXML."""
    found: dict[str, ElementTree.Element] = {}
    for child in parent:
        name = local_name(child)
        if name in found and name != "Tag":
            raise MalformedXML()
        found[name] = child
    return found


def _text(node: ElementTree.Element) -> str:
    return (node.text or "").strip()


def _days(node: ElementTree.Element, what: str) -> int:
    days = decimal(_text(node))
    if days is None or days < 1:
        raise InvalidArgument(f"'{what}' must be a positive integer", ArgumentName=what)
    return days


def _tag(node: ElementTree.Element) -> tuple[str, str]:
    fields = _only(node)
    if "Key" not in fields:
        raise MalformedXML()
    return _text(fields["Key"]), _text(fields["Value"]) if "Value" in fields else ""


def _filter(rule: dict[str, Any], node: ElementTree.Element) -> None:
    """Filter: at most one condition, or And of several."""
    conditions = list(node)
    if len(conditions) > 1:
        raise MalformedXML()
    if not conditions:
        rule["filter"] = "all"
        return
    condition = conditions[0]
    kind = local_name(condition)
    rule["filter"] = kind
    parts = list(condition) if kind == "And" else [condition]
    tags: dict[str, str] = {}
    for part in parts:
        name = local_name(part)
        if name == "Prefix":
            rule["prefix"] = _text(part)
        elif name == "Tag":
            key, value = _tag(part)
            if key in tags:
                raise InvalidRequest("Duplicate Tag Keys are not allowed.")
            tags[key] = value
        elif name in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
            size = decimal(_text(part))
            if size is None:
                raise InvalidArgument(f"'{name}' must be a non-negative integer", ArgumentName=name)
            rule["size_gt" if name == "ObjectSizeGreaterThan" else "size_lt"] = size
        else:
            raise MalformedXML()  # (an unknown condition, or And inside And)
    if tags:
        rule["tags"] = tags


def _expiration(rule: dict[str, Any], node: ElementTree.Element) -> None:
    fields = _only(node)
    marker = fields.pop("ExpiredObjectDeleteMarker", None)
    if marker is not None and _text(marker).lower() == "true":
        raise S3NotImplemented("ExpiredObjectDeleteMarker is not supported.")
    if len(fields) != 1 or not fields.keys() <= {"Days", "Date"}:
        raise MalformedXML()
    if "Days" in fields:
        rule["days"] = _days(fields["Days"], "Days")
        return
    match = _DATE.fullmatch(_text(fields["Date"]))
    if match is None:
        raise InvalidArgument("'Date' must be at midnight GMT", ArgumentName="Date")
    year, month, day = (int(g) for g in match.groups())
    try:
        rule["date"] = calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))
        time.gmtime(rule["date"])
    except (ValueError, OverflowError):
        raise InvalidArgument("'Date' is not a valid date", ArgumentName="Date") from None


def _rule(node: ElementTree.Element) -> dict[str, Any]:
    fields = _only(node)
    rule: dict[str, Any] = {"id": _text(fields.pop("ID")) if "ID" in fields else secrets.token_hex(16),
                            "prefix": "", "tags": {}, "size_gt": None, "size_lt": None, "days": None,
                            "date": None, "noncurrent_days": None, "abort_days": None}
    if len(rule["id"]) > MAX_ID_CHARS:
        raise InvalidArgument(f"ID length should not exceed allowed limit of {MAX_ID_CHARS}", ArgumentName="ID")
    status = _text(fields.pop("Status")) if "Status" in fields else ""
    if status not in ("Enabled", "Disabled"):
        raise MalformedXML()
    rule["enabled"] = status == "Enabled"
    if "Filter" in fields and "Prefix" in fields:
        raise MalformedXML()
    if "Filter" in fields:
        _filter(rule, fields.pop("Filter"))
    elif "Prefix" in fields:
        rule["filter"], rule["prefix"] = "legacy", _text(fields.pop("Prefix"))
    else:
        rule["filter"] = "all"
    for name in ("Transition", "NoncurrentVersionTransition"):
        if name in fields:
            raise S3NotImplemented(f"{name}: this store has a single storage class.")
    if "Expiration" in fields:
        _expiration(rule, fields.pop("Expiration"))
    if "NoncurrentVersionExpiration" in fields:
        noncurrent = _only(fields.pop("NoncurrentVersionExpiration"))
        if "NewerNoncurrentVersions" in noncurrent:
            raise S3NotImplemented("NewerNoncurrentVersions is not supported.")
        if set(noncurrent) != {"NoncurrentDays"}:
            raise MalformedXML()
        rule["noncurrent_days"] = _days(noncurrent["NoncurrentDays"], "NoncurrentDays")
    if "AbortIncompleteMultipartUpload" in fields:
        abort = _only(fields.pop("AbortIncompleteMultipartUpload"))
        if set(abort) != {"DaysAfterInitiation"}:
            raise MalformedXML()
        if rule["tags"] or rule["size_gt"] is not None or rule["size_lt"] is not None:
            raise InvalidRequest("AbortIncompleteMultipartUpload cannot be specified with tags or object sizes.")
        rule["abort_days"] = _days(abort["DaysAfterInitiation"], "DaysAfterInitiation")
    if fields:
        raise MalformedXML()
    if rule["days"] is None and rule["date"] is None and rule["noncurrent_days"] is None \
            and rule["abort_days"] is None:
        raise InvalidRequest("At least one action needs to be specified in a rule")
    return rule


def parse_configuration(body: bytes) -> tuple[dict[str, Any], ...]:
    rules = parse_rules(body, "LifecycleConfiguration", "Rule", MAX_RULES, "lifecycle", _rule)
    if len({rule["id"] for rule in rules}) != len(rules):
        raise InvalidArgument("Rule ID must be unique. Found same ID for more than one rule", ArgumentName="ID")
    return rules


def _filter_xml(rule: dict[str, Any]) -> str:
    if rule["filter"] == "legacy":
        return element("Prefix", rule["prefix"])
    conditions = [element("Prefix", rule["prefix"])] if rule["prefix"] or rule["filter"] == "Prefix" else []
    conditions += [f"<Tag>{element('Key', k)}{element('Value', v)}</Tag>" for k, v in rule["tags"].items()]
    for field, tag in (("size_gt", "ObjectSizeGreaterThan"), ("size_lt", "ObjectSizeLessThan")):
        if rule[field] is not None:
            conditions.append(element(tag, rule[field]))
    inner = f"<And>{''.join(conditions)}</And>" if rule["filter"] == "And" else "".join(conditions)
    return f"<Filter>{inner}</Filter>"


def render_configuration(rules: tuple[dict[str, Any], ...]) -> bytes:
    parts = []
    for rule in rules:
        fields = [element("ID", rule["id"]), _filter_xml(rule), element("Status", "Enabled" if rule["enabled"]
                                                                        else "Disabled")]
        if rule["days"] is not None:
            fields.append(f"<Expiration>{element('Days', rule['days'])}</Expiration>")
        elif rule["date"] is not None:
            fields.append(f"<Expiration>{element('Date', iso8601(rule['date']))}</Expiration>")
        if rule["noncurrent_days"] is not None:
            fields.append("<NoncurrentVersionExpiration>"
                          f"{element('NoncurrentDays', rule['noncurrent_days'])}</NoncurrentVersionExpiration>")
        if rule["abort_days"] is not None:
            fields.append("<AbortIncompleteMultipartUpload>"
                          f"{element('DaysAfterInitiation', rule['abort_days'])}</AbortIncompleteMultipartUpload>")
        parts.append(f"<Rule>{''.join(fields)}</Rule>")
    return document("LifecycleConfiguration", parts)


SETTING = BucketSetting("lifecycle", lambda bucket: bucket.lifecycle, parse_configuration,
                        render_configuration, Buckets.set_lifecycle, MAX_BODY)
