"""Static Large Object manifests over Swift: PUT ?multipart-manifest=put (checked against
the segments as they are now), the manifest in the form a client can PUT again
(?multipart-manifest=get&format=raw), and DELETE ?multipart-manifest=delete (the
segments, nested manifests included, then the manifest).

The stored manifest and the ETag follow Swift's slo middleware, so python-swiftclient's
segmented uploads, downloads and deletes work unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar
from urllib.parse import quote

from aiohttp import web

from edgestore.api.http import parse_byte_ranges, range_specs
from edgestore.api.swift.context import SwiftRequest, http_date, iso_time, x_timestamp
from edgestore.api.swift.errors import SwiftError
from edgestore.api.swift.result_body import accepted_format, render_result
from edgestore.api.swift.versioned import archive_current
from edgestore.model.large_objects import (
    MAX_MANIFEST_BYTES,
    MAX_RECURSION_DEPTH,
    decode_data_segment,
    is_slo,
    read_manifest,
    split_segment_path,
)
from edgestore.model.objects import ObjectInfo

__all__ = ["put_manifest", "raw_manifest", "delete_manifest", "capabilities", "MAX_MANIFEST_SEGMENTS"]

MAX_MANIFEST_SEGMENTS = 1000
# Entries of any kind (inline data segments do not count against the limit above); keeps
# the parsed manifest a few MiB at most on a small node.
MAX_MANIFEST_ENTRIES = 10 * MAX_MANIFEST_SEGMENTS
# Segment HEADs (on PUT) and deletes run this many at a time.
CONCURRENCY = 8
# Nested manifests read on PUT to refuse one that would contain itself; past this many the
# check stops (a loop beyond it still ends at the depth limit when read).
MAX_MANIFESTS_CHECKED = 100
# Swift's two kinds of entry and the keys each may have besides its own ("data" is looked for first).
_OPTIONAL_KEYS: dict[str, set[str]] = {"data": set(), "path": {"etag", "size_bytes", "range"}}

T = TypeVar("T")
R = TypeVar("R")


def capabilities() -> dict[str, object]:
    return {"max_manifest_segments": MAX_MANIFEST_SEGMENTS, "max_manifest_size": MAX_MANIFEST_BYTES,
            "min_segment_size": 1, "allow_async_delete": False}


async def _bounded_map(fn: Callable[[T], Awaitable[R]], items: list[T]) -> list[R]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: T) -> R:
        async with gate:
            return await fn(item)
    return list(await asyncio.gather(*(one(item) for item in items)))


def _quoted(name: str) -> str:
    """A name as Swift's error lists show it (URL-quoted; a lone surrogate as "?")."""
    return quote(name, errors="replace")


def _valid_name(name: str) -> bool:
    """Could a request name this object? (UTF-8 without NUL, as Swift checks every path.)"""
    try:
        container, key = (part.encode() for part in split_segment_path(name))
    except UnicodeEncodeError:
        return False
    return bool(container) and b"\0" not in container + key


async def _segment(req: SwiftRequest, path: str) -> ObjectInfo | None:
    """An object of the caller's account named "/container/object", or None."""
    if not _valid_name(path):
        return None
    container, key = split_segment_path(path)
    bucket = await req.services.buckets.lookup(container)
    if bucket is None or bucket.account != req.account:
        return None
    return await req.services.objects.head(req.account, container, key)


# -- PUT -----------------------------------------------------------------------------------

def _parse(raw: bytes, container: str, obj: str) -> list[dict[str, Any]]:
    """The manifest a client sent, each entry checked on its own (Swift's texts)."""
    if raw.count(b"{") > MAX_MANIFEST_ENTRIES:  # before parsing: each entry costs far more parsed than sent
        raise SwiftError(413, f"Manifest has more than {MAX_MANIFEST_ENTRIES} entries")
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        raise SwiftError(400, "Manifest must be valid JSON.\n") from None
    if not isinstance(parsed, list):
        raise SwiftError(400, "Manifest must be a list.\n")
    errors = [problem for i, entry in enumerate(parsed)
              if (problem := _entry_problem(i, entry, i == len(parsed) - 1, (container, obj)))]
    if parsed and all(isinstance(e, dict) and "data" in e for e in parsed):
        errors.append("Inline data segments require at least one object-backed segment.")
    if errors:
        raise SwiftError(400, "".join(e + "\n" for e in errors))
    return parsed


def _entry_problem(i: int, entry: object, last: bool, itself: tuple[str, str]) -> str | None:
    if not isinstance(entry, dict):
        return f"Index {i}: not a JSON object"
    kind = next((k for k in _OPTIONAL_KEYS if k in entry), None)
    if kind is None:
        return f"Index {i}: expected keys to include one of 'data' or 'path'"
    extra = sorted(k for k in entry if k != kind and k not in _OPTIONAL_KEYS[kind])
    if extra:
        return f"Index {i}: extraneous keys " + ", ".join(json.dumps(k) for k in extra)
    if kind == "data":
        data = decode_data_segment(entry["data"])
        if data is None:
            return f"Index {i}: data must be valid base64"
        return f"Index {i}: too small; each segment must be at least 1 byte." if not data else None
    path, etag, size = entry["path"], entry.get("etag"), entry.get("size_bytes")
    if not isinstance(path, str):
        return f'Index {i}: "path" must be a string'
    if etag is not None and not isinstance(etag, str):
        return f'Index {i}: "etag" must be a string or null (if provided)'
    if split_segment_path(path) == ("", ""):
        return f"Index {i}: path does not refer to an object. Path must be of the form /container/object."
    if size is not None:
        try:
            entry["size_bytes"] = size = int(size)
        except (TypeError, ValueError, OverflowError):
            return f"Index {i}: invalid size_bytes"
        if size < 1 and not last:
            return f"Index {i}: too small; each segment must be at least 1 byte."
    if split_segment_path(path) == itself:
        return f"Index {i}: manifest must not include itself as a segment"
    if entry.get("range"):
        specs = range_specs("bytes=" + entry["range"]) if isinstance(entry["range"], str) else None
        if specs is None:
            return f"Index {i}: invalid range"
        if len(specs) > 1:
            return f"Index {i}: multiple ranges (only one allowed)"
        if size is not None and len(parse_byte_ranges("bytes=" + entry["range"], size) or []) != 1:
            return f"Index {i}: unsatisfiable range"
    return None


def _stored_entry(entry: dict[str, Any], info: ObjectInfo | None, last: bool,
                  problems: list[list[str]]) -> tuple[int, dict[str, Any]]:
    """(bytes contributed, the entry as stored) for one object-backed segment, noting its problems."""
    path = str(entry["path"])
    name = _quoted(path)
    if info is None:
        problems.append([name, "404 Not Found"])
        return 0, {}
    slo = info.record.value.get("slo") if is_slo(info) else None
    size, etag = (int(slo["size"]), str(slo["etag"])) if slo else (info.size, info.etag)
    length = size
    stored: dict[str, Any] = {"name": "/" + path.lstrip("/"), "bytes": size, "hash": etag,
                              "content_type": info.content_type, "last_modified": iso_time(info.last_modified)}
    if entry.get("range"):
        spans = parse_byte_ranges("bytes=" + entry["range"], size) or []
        if not spans:
            problems.append([name, "Unsatisfiable Range"])
        elif spans[0] != (0, size - 1):
            stored["range"] = f"{spans[0][0]}-{spans[0][1]}"
            length = spans[0][1] - spans[0][0] + 1
    if length < 1 and not last:
        problems.append([name, "Too small; each segment must be at least 1 byte."])
    if entry.get("size_bytes") is not None and entry["size_bytes"] != size:
        problems.append([name, "Size Mismatch"])
    if entry.get("etag") is not None and entry["etag"].strip('"') != etag:
        problems.append([name, "Etag Mismatch"])
    if slo:
        stored["sub_slo"] = True
    return length, stored


async def _includes(req: SwiftRequest, names: list[str], itself: tuple[str, str]) -> str | None:
    """The first of these nested manifests that contains `itself` at any depth, if any."""
    checked = 0
    for top in names:
        stack = [(top, 1)]
        while stack and checked < MAX_MANIFESTS_CHECKED:
            name, depth = stack.pop()
            info = await _segment(req, name)
            checked += 1
            if info is None or not is_slo(info) or depth > MAX_RECURSION_DEPTH:
                continue
            for segment in await read_manifest(req.services.objects, info):
                sub = str(segment.get("name", ""))
                if split_segment_path(sub) == itself:
                    return top
                if segment.get("sub_slo"):
                    stack.append((sub, depth + 1))
    return None


def slo_etag(stored: list[dict[str, Any]]) -> str:
    """Swift's SLO ETag: the MD5 of the segments' ETags (with their ranges) in order."""
    md5 = hashlib.md5()
    for entry in stored:
        if "data" in entry:
            part = hashlib.md5(decode_data_segment(entry["data"]) or b"").hexdigest()
        elif entry.get("range"):
            part = f"{entry['hash']}:{entry['range']};"
        else:
            part = str(entry["hash"])
        md5.update(part.encode())
    return md5.hexdigest()


async def _read_manifest_body(req: SwiftRequest) -> bytes:
    if req.http.content_length is not None and req.http.content_length > MAX_MANIFEST_BYTES:
        raise SwiftError(413, f"Manifest File > {MAX_MANIFEST_BYTES} bytes")
    data = bytearray()
    async for chunk in req.http.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > MAX_MANIFEST_BYTES:
            raise SwiftError(413, f"Manifest File > {MAX_MANIFEST_BYTES} bytes")
    return bytes(data)


async def put_manifest(req: SwiftRequest, attrs: dict[str, Any]) -> web.StreamResponse:
    """PUT ?multipart-manifest=put: `attrs` are the new object's (content type, metadata)."""
    if "X-Copy-From" in req.http.headers:
        raise SwiftError(405, "Multipart Manifest PUTs cannot be COPY requests")
    bucket = await req.own_container()
    assert req.obj is not None
    itself = (bucket.name, req.obj)
    entries = _parse(await _read_manifest_body(req), *itself)
    paths = sorted({str(e["path"]) for e in entries if "path" in e})
    if sum(1 for e in entries if "path" in e) > MAX_MANIFEST_SEGMENTS:
        raise SwiftError(413, f"Number of object-backed segments must be <= {MAX_MANIFEST_SEGMENTS}")

    async def head(path: str) -> ObjectInfo | None:
        return await _segment(req, path)

    found = dict(zip(paths, await _bounded_map(head, paths), strict=True))
    problems: list[list[str]] = []
    stored: list[dict[str, Any]] = []
    total = 0
    for i, entry in enumerate(entries):
        if "data" in entry:
            data = decode_data_segment(entry["data"]) or b""
            total += len(data)
            stored.append({"data": entry["data"]})
            continue
        length, kept = _stored_entry(entry, found[str(entry["path"])], i == len(entries) - 1, problems)
        total += length
        stored.append(kept)
    if not problems:
        nested = [e["name"] for e in stored if e.get("sub_slo")]
        loop = await _includes(req, nested, itself)
        if loop is not None:
            problems.append([_quoted(loop), "Manifest must not include itself as a segment"])
    if problems:
        return render_result(accepted_format(req.http), 400, {}, problems, "upload")
    etag = slo_etag(stored)
    declared = req.http.headers.get("Etag", "").strip().strip('"')
    if declared and declared != etag:
        raise SwiftError(422)
    body = json.dumps(stored).encode()

    async def one_chunk() -> AsyncIterator[bytes]:
        yield body

    async def before_commit() -> None:
        await archive_current(req, bucket, req.obj or "")

    info = await req.services.objects.put(bucket.account, bucket.name, req.obj, one_chunk(),
                                          dict(attrs, slo={"etag": etag, "size": total}),
                                          before_commit=before_commit, versioning=bucket.versioning)
    return web.Response(status=201, headers={"Etag": f'"{etag}"', "Last-Modified": http_date(info.last_modified),
                                             "X-Timestamp": x_timestamp(info.last_modified)},
                        content_type="text/html", charset="UTF-8")


# -- GET ?multipart-manifest=get&format=raw ------------------------------------------------

def raw_manifest(stored: list[dict[str, Any]]) -> bytes:
    """The stored manifest in the form it is PUT (path/etag/size_bytes), keys sorted as Swift does."""
    entries = [entry if "data" in entry else
               {"path": entry.get("name"), "etag": entry.get("hash"), "size_bytes": entry.get("bytes"),
                **({"range": entry["range"]} if "range" in entry else {})}
               for entry in stored]
    return json.dumps(entries, sort_keys=True).encode()


# -- DELETE ?multipart-manifest=delete -----------------------------------------------------

async def _segments_of(req: SwiftRequest, name: str) -> list[tuple[str, bool]]:
    """(name, is a nested manifest) of each object-backed segment of a manifest."""
    info = await _segment(req, name)
    if info is None:
        raise SwiftError(404, "SLO manifest not found")
    if not is_slo(info):
        raise SwiftError(400, "Not an SLO manifest")
    return [(str(s["name"]), bool(s.get("sub_slo"))) for s in await read_manifest(req.services.objects, info)
            if "name" in s]


async def _delete_one(req: SwiftRequest, name: str) -> bool:
    """Delete one object of the account; False if it was not there."""
    container, key = split_segment_path(name)
    bucket = await req.services.buckets.lookup(container) if _valid_name(name) else None
    if bucket is None or bucket.account != req.account or \
            await req.services.objects.head(req.account, container, key) is None:
        return False
    await req.services.versions.delete(bucket.account, bucket.name, key, bucket.versioning, None)
    return True


async def delete_manifest(req: SwiftRequest) -> web.StreamResponse:
    """The segments first, then each manifest after its segments; answered like a bulk
    delete: 200, with the outcome (and any errors) in the body."""
    fmt = accepted_format(req.http)
    status, message = "200 OK", ""
    errors: list[list[str]] = []
    pending: list[tuple[str, bool]] = [(f"/{req.container}/{req.obj}", True)]
    doomed: list[str] = []
    not_found = deleted = 0
    try:
        while pending:
            if len(pending) > MAX_MANIFEST_SEGMENTS * 10:
                raise SwiftError(400, "Too many buffered slo segments to delete.")
            name, nested = pending.pop(0)
            if not nested:
                doomed.append(name)
                continue
            try:
                pending.extend(await _segments_of(req, name))
            except SwiftError as exc:
                if exc.status == 404:
                    not_found += 1
                else:
                    errors.append([_quoted(name), exc.body or str(exc)])
                continue
            pending.append((name, False))
        outcomes = await _bounded_map(lambda name: _delete_one(req, name), doomed)
        deleted = sum(outcomes)
        not_found += len(outcomes) - deleted
        if errors:
            status = "400 Bad Request"
        elif not deleted and not not_found:
            status, message = "400 Bad Request", "Invalid bulk delete."
    except SwiftError as exc:
        status, message = "400 Bad Request", exc.body or ""
    fields: dict[str, object] = {"Response Status": status, "Response Body": message,
                                 "Number Deleted": deleted, "Number Not Found": not_found}
    return render_result(fmt, 200, fields, errors, "delete")
