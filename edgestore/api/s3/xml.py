"""S3 XML documents: building answers and parsing the few request bodies S3 takes."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Iterable
from urllib.parse import quote
from xml.sax.saxutils import escape

from aiohttp import web

__all__ = ["NS", "xml_response", "document", "element", "iso8601", "http_date", "owner_xml", "encode_key"]

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def xml_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/xml")


def document(root: str, body: Iterable[str] | str) -> bytes:
    inner = body if isinstance(body, str) else "".join(body)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">{inner}</{root}>'.encode()


def element(tag: str, value: object) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{tag}>{_escape_text(str(value))}</{tag}>"


def _escape_text(text: str) -> str:
    """XML-escape, writing control characters (which XML 1.0 cannot carry raw) as references."""
    escaped = escape(text, {'"': "&quot;"})
    if any(ord(c) < 0x20 and c not in "\t\n\r" for c in escaped):
        escaped = "".join(f"&#x{ord(c):x};" if ord(c) < 0x20 and c not in "\t\n\r" else c for c in escaped)
    return escaped.replace("\r", "&#xD;")


def iso8601(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def http_date(seconds: float) -> str:
    return formatdate(int(seconds), usegmt=True)


def owner_xml(account: str) -> str:
    return f"<Owner>{element('ID', account)}{element('DisplayName', account)}</Owner>"


def encode_key(key: str, url: bool) -> str:
    """A key as listings show it: as is, or URL-encoded for encoding-type=url."""
    return quote(key, safe="/") if url else key
