"""Listing rows of one device: a page of records in name order, lean (a few fields picked
out of each value by SQLite, not whole records), with names under a delimiter rolled up.

A page is a list of items in name order:
- a row: [name, ts, node, deleted, field1, field2, ...] (the fields asked for, None where
  the value lacks one; tombstones included, as the coordinator needs them to merge);
- a common prefix: [prefix, witness], when a delimiter is given and names below `prefix`
  contain it after the prefix asked for. `witness` is the first name under the common
  prefix whose row here is live (not a tombstone, not expired at `now`). A common prefix
  with no live row here is left out.

Each common prefix costs an index seek or two (its first row, a live one if that is not,
then past its end), however many rows it holds: that is what makes a delimiter listing
of a large bucket cheap.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any, Sequence

__all__ = ["list_rows_sync", "list_rows_json_sync", "prefix_end", "FIELD_PATH", "LIVE_SQL"]

# A field is a JSON path into a record's value: "size", "slo.size".
FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# Live: not a tombstone and not expired (an object's delete_at, unix seconds, not yet due).
LIVE_SQL = "deleted = 0 AND coalesce(json_extract(value, '$.delete_at') > ?, 1)"
_LIVE = LIVE_SQL


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with prefix (in code
    point order, which is SQLite's byte order for UTF-8), or None if there is none."""
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    nxt = ord(stripped[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be stored; skip past them
        nxt = 0xE000
    return stripped[:-1] + chr(nxt)


def is_common_prefix(name: str, prefix: str, delimiter: str) -> bool:
    """Is `name` a common prefix that a listing of `prefix` rolled up at `delimiter`?"""
    return (bool(delimiter) and name.startswith(prefix) and name.endswith(delimiter)
            and name.find(delimiter, len(prefix)) == len(name) - len(delimiter))


def _columns(fields: Sequence[str]) -> str:
    for f in fields:
        if not FIELD_PATH.match(f):
            raise ValueError(f"bad field {f!r}")
    return "name, ts, node, deleted" + "".join(f", json_extract(value, '$.{f}')" for f in fields)


def list_rows_json_sync(conn: sqlite3.Connection, kind: str, prefix: str, after: str | None, limit: int,
                        delimiter: str, fields: Sequence[str], now: float) -> str:
    """list_rows_sync's page as JSON text, for a peer. Without a delimiter SQLite writes
    it (json_array per row): a large page never becomes Python objects on this side."""
    if delimiter:
        return json.dumps(list_rows_sync(conn, kind, prefix, after, limit, delimiter, fields, now),
                          separators=(",", ":"))
    end = prefix_end(prefix)
    where = "kind = ? AND name >= ?"
    args: list[Any] = [kind, prefix]
    if after is not None and after >= prefix:
        where += " AND name > ?"
        args.append(after)
    if end is not None:
        where += " AND name < ?"
        args.append(end)
    page = f"SELECT json_array({_columns(fields)}) AS item FROM records WHERE {where} ORDER BY name LIMIT ?"
    (text,) = conn.execute(f"SELECT '[' || group_concat(item) || ']' FROM ({page})", [*args, limit]).fetchone()
    return str(text) if text is not None else "[]"


def list_rows_sync(conn: sqlite3.Connection, kind: str, prefix: str, after: str | None, limit: int,
                   delimiter: str, fields: Sequence[str], now: float) -> list[list[Any]]:
    """Up to `limit` items (rows and common prefixes, see the module doc) of `kind` under
    `prefix`, after `after`: past a whole common prefix when `after` is one."""
    columns = _columns(fields)
    end = prefix_end(prefix)
    low, inclusive = prefix, True
    if after is not None and after >= prefix:
        if is_common_prefix(after, prefix, delimiter):
            seek = prefix_end(after)
            if seek is None:
                return []
            low = seek
        else:
            low, inclusive = after, False
    upper = " AND name < ?" if end is not None else ""
    items: list[list[Any]] = []
    while len(items) < limit:
        args: list[Any] = [kind, low] + ([end] if end is not None else [])
        op = ">=" if inclusive else ">"
        if not delimiter:
            cursor = conn.execute(f"SELECT {columns} FROM records WHERE kind = ? AND name {op} ?{upper} ORDER BY name",
                                  args)
            items += map(list, cursor.fetchmany(limit - len(items)))
            return items
        cursor = conn.execute(f"SELECT {columns}, {_LIVE} FROM records WHERE kind = ? AND name {op} ?{upper}"
                              " ORDER BY name", [now] + args)
        common = witness = None
        for row in cursor:
            name = row[0]
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                common, witness = name[:cut + len(delimiter)], name if row[-1] else None
                break
            items.append(list(row[:-1]))
            if len(items) >= limit:
                return items
        cursor.close()
        if common is None:
            return items
        common_end = prefix_end(common)
        if witness is None:  # the first row under it is dead: look for a live one
            found = conn.execute(
                f"SELECT name FROM records WHERE kind = ? AND name >= ? {' AND name < ?' if common_end else ''}"
                f" AND {_LIVE} ORDER BY name LIMIT 1",
                [kind, common] + ([common_end] if common_end else []) + [now]).fetchone()
            witness = found[0] if found is not None else None
        if witness is not None:
            items.append([common, witness])
        if common_end is None:
            return items
        low, inclusive = common_end, True
    return items
