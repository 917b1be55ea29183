"""Swift listings (of an account's containers and of a container's objects): the query
parameters, the selection over a name-ordered stream, and the plain/JSON/XML renderings.

The selection is one function for both levels: marker/end_marker bound the names, a
delimiter folds names into `subdir` entries, `reverse` walks the same range backwards
while keeping at most `limit` entries in memory.
"""

from __future__ import annotations

import collections
import json
import operator
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Generic, Iterable, TypeVar
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from edgestore.api.swift.context import is_true
from edgestore.api.swift.errors import SwiftError

__all__ = ["LISTING_LIMIT", "ListingParams", "Subdir", "listing_params", "select", "select_pages", "listing_format",
           "render_listing"]

LISTING_LIMIT = 10000
T = TypeVar("T")


@dataclass(frozen=True)
class Subdir:
    name: str


@dataclass(frozen=True)
class ListingParams:
    prefix: str
    delimiter: str
    marker: str
    end_marker: str
    limit: int
    reverse: bool
    path_only: bool = False  # `path=`: the direct children of prefix, no subdirs


def listing_params(query: dict[str, str], allow_path: bool) -> ListingParams:
    raw_limit = query.get("limit")
    limit = LISTING_LIMIT
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise SwiftError(412, "Value of limit must be a positive integer") from None
        if limit < 0 or limit > LISTING_LIMIT:
            raise SwiftError(412, f"Maximum limit is {LISTING_LIMIT}")
    delimiter = query.get("delimiter", "")
    if len(delimiter) > 1:
        raise SwiftError(412, "Bad delimiter")
    prefix = query.get("prefix", "")
    path_only = False
    if allow_path and "path" in query:
        path = query["path"]
        prefix, delimiter, path_only = (path.rstrip("/") + "/" if path else ""), "", True
    reverse = is_true(query.get("reverse", ""))
    return ListingParams(prefix, delimiter, query.get("marker", ""), query.get("end_marker", ""),
                         limit, reverse, path_only)


class _Selection(Generic[T]):
    """The entries of one listing page, fed from a name-ordered stream (already from
    `prefix`; forwards it may start after `marker`) in batches of any size."""

    def __init__(self, params: ListingParams, key: Callable[[T], str]) -> None:
        self.params, self.key = params, key
        self.kept: collections.deque[tuple[str, T | Subdir]] = collections.deque(
            maxlen=params.limit if params.reverse else None)
        self.low, self.high = (params.end_marker, params.marker) if params.reverse else \
            (params.marker, params.end_marker)
        self.last_subdir: str | None = None

    def feed(self, batch: Iterable[T]) -> bool:
        """Take a batch; True once the page is decided (read no further)."""
        params, kept, low, high, key = self.params, self.kept, self.low, self.high, self.key
        prefix, delimiter, cut = params.prefix, params.delimiter, len(params.prefix)
        if not (delimiter or params.path_only or low or high):
            batch = batch if isinstance(batch, list) else list(batch)
            if batch and key(batch[0]) >= prefix and key(batch[-1]).startswith(prefix):
                # A name-ordered run from `prefix` to a name under it is under it all along:
                # nothing to check name by name (a full listing of 10,000 names).
                taken = batch if params.reverse else batch[:params.limit - len(kept)]
                kept.extend(zip(map(key, taken), taken, strict=True))
                return not params.reverse and len(kept) >= params.limit
        for item in batch:
            name = key(item)
            if not name.startswith(prefix):
                if name > prefix:
                    return True
                continue
            if high and name >= high:
                return True
            entry: T | Subdir = item
            if params.path_only and "/" in name[cut:]:
                continue
            if delimiter:
                at = name.find(delimiter, cut)
                if at >= 0:
                    shown = name[:at + len(delimiter)]
                    if shown == self.last_subdir:
                        continue
                    self.last_subdir, name, entry = shown, shown, Subdir(shown)
            if low and name <= low:
                continue
            if high and name >= high:
                return True
            kept.append((name, entry))
            if not params.reverse and len(kept) >= params.limit:
                return True
        return False

    def entries(self) -> list[T | Subdir]:
        entries = [entry for _, entry in self.kept]
        return entries[::-1] if self.params.reverse else entries


async def select(items: AsyncIterator[tuple[str, T]], params: ListingParams) -> list[T | Subdir]:
    """The entries of one listing page from a name-ordered stream of (name, entry) (already
    from `prefix`; forwards it may start after `marker`). Stops reading as soon as the page
    is decided."""
    chosen = await select_pages(_one_by_one(items), params, operator.itemgetter(0))
    return [entry if isinstance(entry, Subdir) else entry[1] for entry in chosen]


async def _one_by_one(items: AsyncIterator[T]) -> AsyncIterator[tuple[T]]:
    async for item in items:
        yield (item,)


async def select_pages(pages: AsyncIterator[Iterable[T]], params: ListingParams,
                       key: Callable[[T], str]) -> list[T | Subdir]:
    """select() over a stream that comes in batches (pages of a listing), each entry's
    name given by `key`."""
    if params.limit == 0:
        return []
    selection: _Selection[T] = _Selection(params, key)
    async for batch in pages:
        if selection.feed(batch):
            break
    return selection.entries()


def listing_format(http: web.Request, query: dict[str, str]) -> str:
    """"plain", "json" or "xml", from ?format= first, then the Accept header."""
    fmt = query.get("format", "").lower()
    if fmt in ("json", "xml", "plain"):
        return fmt
    if fmt:
        return "plain"
    accept = http.headers.get("Accept", "")
    for media in (m.split(";")[0].strip().lower() for m in accept.split(",")):
        if media == "application/json":
            return "json"
        if media in ("application/xml", "text/xml"):
            return "xml"
        if media == "text/plain":
            return "plain"
    return "plain"


def _name(entry: Any, as_dict: Callable[[Any], dict[str, Any]]) -> str:
    for attr in ("name", "key"):
        value = getattr(entry, attr, None)
        if isinstance(value, str):
            return value
    return str(as_dict(entry)["name"])


_CONTENT_TYPES = {"plain": "text/plain", "json": "application/json", "xml": "application/xml"}


def render_listing(fmt: str, root: str, root_name: str, entries: list[Any],
                   as_dict: Callable[[Any], dict[str, Any]], headers: dict[str, str],
                   method: str, name_of: Callable[[Any], str] | None = None) -> web.Response:
    """One listing in the format asked for. An empty plain listing is a 204, as in Swift.
    `name_of`, if given, names an entry that is not a Subdir (for the plain format)."""
    if fmt == "plain":
        if not entries:
            return web.Response(status=204, headers=headers)
        # Entries are Subdirs or carry `name` or `key`: no need to build their dicts.
        if name_of is not None:
            body = "".join([(e.name if isinstance(e, Subdir) else name_of(e)) + "\n" for e in entries])
        else:
            body = "".join(f"{_name(e, as_dict)}\n" for e in entries)
    elif fmt == "json":
        body = json.dumps([{"subdir": e.name} if isinstance(e, Subdir) else as_dict(e) for e in entries])
    else:
        element = "object" if root == "container" else "container"
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', f"<{root} name={quoteattr(root_name)}>"]
        for entry in entries:
            if isinstance(entry, Subdir):
                parts.append(f"<subdir name={quoteattr(entry.name)}><name>{escape(entry.name)}</name></subdir>")
            else:
                fields = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in as_dict(entry).items())
                parts.append(f"<{element}>{fields}</{element}>")
        parts.append(f"</{root}>")
        body = "".join(parts)
    response = web.Response(status=200, headers=headers, content_type=_CONTENT_TYPES[fmt], charset="utf-8",
                            body=b"" if method == "HEAD" else body.encode())
    return response
