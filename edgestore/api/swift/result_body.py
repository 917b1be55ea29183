"""The body Swift's bulk operations answer with (bulk delete and extract, SLO manifest
errors, multipart-manifest deletes): a few summary fields and a list of (name, status)
errors, as plain text, JSON or XML as the Accept header asks."""

from __future__ import annotations

import json
from xml.sax.saxutils import escape

from aiohttp import web

__all__ = ["accepted_format", "render_body", "render_result"]

_CONTENT_TYPES = {"plain": "text/plain", "json": "application/json", "xml": "application/xml"}


def accepted_format(http: web.Request) -> str:
    """"plain", "json" or "xml": the first of them the Accept header names; plain if none."""
    for media in (m.split(";")[0].strip().lower() for m in http.headers.get("Accept", "").split(",")):
        if media == "application/json":
            return "json"
        if media in ("application/xml", "text/xml"):
            return "xml"
        if media in ("text/plain", "text/*", "*/*"):
            return "plain"
    return "plain"


def render_body(content_type: str | None, fields: dict[str, object], errors: list[list[str]], root: str) -> bytes:
    """The body in ``content_type`` (plain text when None or unknown); keys sorted in plain
    text and XML, whose outer element ``root`` names."""
    if content_type == "application/json":
        return json.dumps({**fields, "Errors": errors}).encode()
    if content_type is not None and content_type.endswith("/xml"):
        lines = [f"<{root}>\n"]
        for key in sorted(fields):
            tag = key.replace(" ", "_").lower()
            lines.append(f"<{tag}>{escape(str(fields[key]))}</{tag}>\n")
        lines.append("<errors>\n")
        lines += [f"<object><name>{escape(name)}</name><status>{escape(why)}</status></object>\n"
                  for name, why in errors]
        lines.append(f"</errors>\n</{root}>\n")
        return "".join(lines).encode()
    return ("".join(f"{key}: {fields[key]}\n" for key in sorted(fields)) + "Errors:\n"
            + "".join(f"{name}, {why}\n" for name, why in errors)).encode()


def render_result(fmt: str, status: int, fields: dict[str, object], errors: list[list[str]],
                  root: str) -> web.Response:
    content_type = _CONTENT_TYPES[fmt]
    return web.Response(status=status, body=render_body(content_type, fields, errors, root),
                        content_type=content_type, charset="utf-8")
