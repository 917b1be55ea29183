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
of a large bucket cheap. A page is one SQL statement, whose result is the page's JSON.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any, Sequence

__all__ = ["list_rows_sync", "list_rows_json_sync", "prefix_end", "FIELD_PATH", "LIVE_SQL"]

# A field is a JSON path into a record's value: "size", "slo.size".
FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# Live: not a tombstone and not expired (an object's delete_at, unix seconds, not yet due),
# of the row `r` (a table alias and a dot, or nothing) at `now` (a parameter).
_LIVE = "{r}deleted = 0 AND coalesce(json_extract({r}value, '$.delete_at') > {now}, 1)"
LIVE_SQL = _LIVE.format(r="", now="?")


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


# Top-level keys most values lack. SQLite (3.40) parses a value for json_extract, and for
# a listing of names only (delete_at alone) that parse was a third of the query; a value
# is written by json.dumps, which spells every key out, so one without the text "key"
# has no such key. With a field every value has, the value is parsed anyway: no test then.
_RARE_KEYS = {"delete_at", "slo"}


def _columns(fields: Sequence[str]) -> str:
    """The columns of a row item: name, version, tombstone flag and the fields asked for."""
    for f in fields:
        if not FIELD_PATH.match(f):
            raise ValueError(f"bad field {f!r}")
    rare = all(f.split(".")[0] in _RARE_KEYS for f in fields)
    return "name, ts, node, deleted" + "".join(
        f", CASE WHEN instr(value, '\"{f.split('.')[0]}\"') THEN json_extract(value, '$.{f}') END" if rare
        else f", json_extract(value, '$.{f}')" for f in fields)


# SQLite orders every TEXT value before every BLOB: an empty BLOB as the upper bound of a
# name range means "no bound" (for a prefix with no end: empty, or U+10FFFF only).
_NO_END = b""

# One delimiter listing page in one statement: each step of `walk` is one indexed seek,
# to the first name past the previous one, or past the whole common prefix it fell in.
# Bound: :kind, :low (inclusive), :end, :cut (characters of the listing's prefix, plus
# one), :delim, :dlen (its characters), :dend (prefix_end of the delimiter), :now, :limit.
# A row reached by the walk is its common prefix's first row, so its own name is the
# witness when it is live - unless the page starts (:low) inside that common prefix.
# In SQL, `at` is where the delimiter starts in the name after the prefix (1-based, 0:
# none); a common prefix is name[:cut - 1 + at - 1 + dlen]. Because it ends with the
# delimiter, prefix_end(common) is common less the delimiter, then :dend — except for a
# delimiter made of U+10FFFF only (no :dend): then the general rule, in SQL.
_AT = "instr(substr({n}, :cut), :delim)"
_HEAD = "substr({n}, 1, :cut - 2 + " + _AT + ")"
_COMMON = "substr({n}, 1, :cut - 2 + " + _AT + " + :dlen)"
_COMMON_END = _HEAD + " || :dend"
_TRIMMED = "rtrim(" + _HEAD + ", char(1114111))"
_COMMON_END_GENERAL = (  # prefix_end() in SQL: strip U+10FFFF, then the next code point past the last (no surrogates)
    "CASE WHEN {t} = '' THEN NULL ELSE substr({t}, 1, length({t}) - 1)"
    " || char(unicode(substr({t}, -1)) + 1 + 2048 * (unicode(substr({t}, -1)) + 1 = 55296)) END")


def _walk_sql(columns: str, general: bool) -> str:
    def common_end(n: str) -> str:
        if general:
            return _COMMON_END_GENERAL.format(t=_TRIMMED.format(n=n))
        return _COMMON_END.format(n=n)

    def seek(n: str) -> str:  # where the step after name n starts (inclusive); NULL: nothing can follow
        return f"CASE WHEN {_AT.format(n=n)} > 0 THEN {common_end(n)} ELSE {n} || char(0) END"

    first = "SELECT name FROM records WHERE kind = :kind AND name >= {low} AND name < :end ORDER BY name LIMIT 1"
    witness = (f"SELECT w.name FROM records AS w WHERE w.kind = :kind AND w.name >= {_COMMON.format(n='r.name')}"
               f" AND w.name < coalesce({common_end('r.name')}, x'') AND {_LIVE.format(r='w.', now=':now')}"
               " ORDER BY w.name LIMIT 1")
    return f"""
WITH RECURSIVE walk(n) AS (
    SELECT ({first.format(low=":low")})
    UNION ALL
    SELECT ({first.format(low=seek("walk.n"))}) FROM walk WHERE walk.n IS NOT NULL AND {seek("walk.n")} IS NOT NULL
)
SELECT CAST('[' || group_concat(item) || ']' AS BLOB) FROM (
    SELECT CASE WHEN at = 0 THEN json_array({columns}) ELSE json_array(common, witness) END AS item FROM (
        SELECT r.name AS name, r.ts AS ts, r.node AS node, r.deleted AS deleted, r.value AS value,
            {_AT.format(n="r.name")} AS at, {_COMMON.format(n="r.name")} AS common,
            CASE WHEN {_LIVE.format(r="r.", now=":now")} AND :low <= {_COMMON.format(n="r.name")} THEN r.name
                 ELSE ({witness}) END AS witness
        FROM walk JOIN records AS r ON r.kind = :kind AND r.name = walk.n)
    WHERE at = 0 OR witness IS NOT NULL
    LIMIT :limit)
"""


def list_rows_json_sync(conn: sqlite3.Connection, kind: str, prefix: str, after: str | None, limit: int,
                        delimiter: str, fields: Sequence[str], now: float) -> bytes:
    """Up to `limit` items (rows and common prefixes, see the module doc) of `kind` under
    `prefix`, after `after` (past a whole common prefix when `after` is one), as the JSON
    text (UTF-8) of a list. SQLite writes it in one statement: a page never becomes Python
    objects on this side, the thread that asks does not hold the GIL meanwhile (one step
    of the statement, where a step per common prefix waited for the GIL at each), and
    the bytes go out as they are."""
    end = prefix_end(prefix)
    low = prefix
    if after is not None and after >= prefix:
        if is_common_prefix(after, prefix, delimiter):
            seek = prefix_end(after)
            if seek is None:
                return b"[]"
            low = seek
        else:
            low = after + "\0"   # the smallest name greater than `after`
    args: dict[str, Any] = {"kind": kind, "low": low, "end": end if end is not None else _NO_END, "limit": limit}
    if not delimiter:
        page = (f"SELECT json_array({_columns(fields)}) AS item FROM records"
                " WHERE kind = :kind AND name >= :low AND name < :end ORDER BY name LIMIT :limit")
        sql = f"SELECT CAST('[' || group_concat(item) || ']' AS BLOB) FROM ({page})"
    else:
        dend = prefix_end(delimiter)
        sql = _walk_sql(_columns(fields), general=dend is None)
        args |= {"cut": len(prefix) + 1, "delim": delimiter, "dlen": len(delimiter), "dend": dend, "now": now}
    (text,) = conn.execute(sql, args).fetchone()
    return bytes(text) if text is not None else b"[]"


def list_rows_sync(conn: sqlite3.Connection, kind: str, prefix: str, after: str | None, limit: int,
                   delimiter: str, fields: Sequence[str], now: float) -> list[list[Any]]:
    """list_rows_json_sync's page, decoded (a field holding a JSON object or array comes as
    that object)."""
    page: list[list[Any]] = json.loads(list_rows_json_sync(conn, kind, prefix, after, limit, delimiter, fields, now))
    return page
