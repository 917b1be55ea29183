"""Merging the listing pages that a quorum of replicas sent (store/listing.py's items).

Rows merge last writer wins, by name, as records do. A page that came back full may end
before names another replica sent: the merged page stops at the smallest last name of the
full pages (the frontier), and the next page starts there.

Common prefixes need care, because a replica rolls a prefix up only if it holds a live
row under it, and a stale replica may still hold a row live that was deleted since:
taking the union of the prefixes would show a "directory" whose last object a quorum
already deleted. A prefix is confirmed when every replica asked named it with the same
witness (the first live name under it there): each of them holds that name live, so its
newest version among them is live, and since a read quorum overlaps the write quorum of
every acknowledged write, that newest version is the newest acknowledged one. Otherwise
the prefix is disputed and the coordinator merges the rows under it record by record
until it finds one that is live (or none). Replicas in step, the usual case, cost one
index seek per prefix; replicas out of step cost a walk of the disputed prefixes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["Row", "row_version", "CommonPrefix", "Merged", "merge_pages"]


# A row stays in its wire form, [name, ts, node, deleted, field1, ...]: a listing goes
# through tens of thousands of them, and an object per row costs more than the rest.
Row = list[Any]


def row_version(row: Row) -> tuple[int, str]:
    return (row[1], row[2])


@dataclass(frozen=True, slots=True)
class CommonPrefix:
    name: str


@dataclass
class Merged:
    items: list[Row | CommonPrefix]   # in name order, up to the frontier
    disputed: set[str]                # those common prefixes that need a record-level check
    frontier: str | None              # where the next page starts; None: this was the last


def merge_pages(pages: Sequence[Sequence[Row]], limit: int) -> Merged:
    """One merged page from the replicas' pages of at most `limit` items each."""
    frontier: str | None = None
    for page in pages:
        if len(page) >= limit:
            last = page[-1][0]
            frontier = last if frontier is None or last < frontier else frontier
    first = pages[0]
    if all(page == first for page in pages[1:]):
        # Replicas in step (the usual case): nothing to merge, every prefix confirmed.
        return Merged([CommonPrefix(item[0]) if len(item) == 2 else item for item in first], set(), frontier)
    rows: dict[str, Row] = {}
    witnesses: dict[str, list[str]] = {}
    for page in pages:
        for item in page:
            name = item[0]
            if frontier is not None and name > frontier:
                break
            if len(item) == 2:
                witnesses.setdefault(name, []).append(item[1])
                continue
            have = rows.get(name)
            if have is None or row_version(item) > row_version(have):
                rows[name] = list(item)
    disputed = {name for name, seen in witnesses.items()
                if len(seen) != len(pages) or any(w != seen[0] for w in seen)}
    items: list[Row | CommonPrefix] = [rows[name] if name in rows else CommonPrefix(name)
                                       for name in sorted(rows.keys() | witnesses.keys())]
    return Merged(items, disputed, frontier)
