"""S3 XML documents: building answers and parsing the few request bodies S3 takes."""

from __future__ import annotations

import functools
import re
import time
from typing import Iterable
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from aiohttp import web

from edgestore.api.http import imf_fixdate
from edgestore.api.s3.errors import MalformedXML

__all__ = ["NS", "xml_response", "parse_xml", "local_name", "children", "decimal", "document", "element", "escape_text",
           "iso8601", "http_date", "owner_xml", "encode_key"]

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def parse_xml(body: bytes, root: str) -> ElementTree.Element:
    """A request body's XML tree, whose root element must be `root` (any namespace).
    Anything else -- malformed XML, a DOCTYPE or entity (never expanded), an encoding
    Python cannot decode -- is MalformedXML."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body or b"\x00" in body:
        raise MalformedXML()
    try:
        tree = ElementTree.fromstring(body)
    except Exception:  # ParseError, and LookupError/ValueError for unusable declared encodings
        raise MalformedXML() from None
    if local_name(tree) != root:
        raise MalformedXML()
    return tree


def local_name(element: ElementTree.Element) -> str:
    return str(element.tag).rsplit("}", 1)[-1]


def children(element: ElementTree.Element) -> dict[str, str]:
    """Child elements' texts by local name (the last one wins)."""
    return {local_name(child): (child.text or "").strip() for child in element}


_DECIMAL = re.compile(r"[0-9]{1,10}")


def decimal(raw: str) -> int | None:
    """A plain non-negative decimal of at most 10 digits, or None (str.isdigit() would let
    superscripts and other digits through that int() refuses)."""
    return int(raw) if _DECIMAL.fullmatch(raw) else None


def xml_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/xml")


def document(root: str, body: Iterable[str] | str) -> bytes:
    inner = body if isinstance(body, str) else "".join(body)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">{inner}</{root}>'.encode()


_NEEDS_ESCAPE = re.compile(r'[&<>"\x00-\x1f]')
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")   # all but tab, newline, carriage return


def element(tag: str, value: object) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{tag}>{escape_text(str(value))}</{tag}>"


def needs_escape(text: str) -> bool:
    """Would escape_text change `text`? One scan of a page's values joined tells whether
    any of them needs escaping."""
    return _NEEDS_ESCAPE.search(text) is not None


def escape_text(text: str) -> str:
    """XML-escape, writing control characters (which XML 1.0 cannot carry raw) as references."""
    if not needs_escape(text):  # most keys and values: as they are
        return text
    escaped = escape(text, {'"': "&quot;"})
    if _CONTROL.search(escaped) is not None:
        escaped = "".join(f"&#x{ord(c):x};" if ord(c) < 0x20 and c not in "\t\n\r" else c for c in escaped)
    return escaped.replace("\r", "&#xD;")


def iso8601(seconds: float) -> str:
    return _iso_second(int(seconds)) + _MILLIS[int(seconds * 1000) % 1000]


# ".000Z" to ".999Z": a listing writes one per key, and a lookup costs half a format.
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


@functools.lru_cache(maxsize=1024)
def _iso_second(seconds: int) -> str:
    """Listed objects often share their second: format each one once."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def http_date(seconds: float) -> str:
    return imf_fixdate(int(seconds))


def owner_xml(account: str) -> str:
    return f"<Owner>{element('ID', account)}{element('DisplayName', account)}</Owner>"


def encode_key(key: str, url: bool) -> str:
    """A key as listings show it: as is, or URL-encoded for encoding-type=url."""
    return quote(key, safe="/") if url else key
