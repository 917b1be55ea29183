"""The pure parts of bulk delete and expiry: which result format an Accept header picks
(as Swift's swob picks it), and which delete_at the X-Delete-* headers ask for."""

from __future__ import annotations

import time

import pytest

from edgestore.api.swift.bulk import best_format
from edgestore.api.swift.errors import SwiftError
from edgestore.api.swift.expiry import requested_delete_at
from edgestore.model.expiry import MAX_DELETE_AT, ExpiryIndex


@pytest.mark.parametrize("accept, expected", [
    (None, "text/plain"),
    ("", "text/plain"),
    ("*/*", "text/plain"),
    ("application/json", "application/json"),
    ("application/*", "application/json"),
    ("text/xml", "text/xml"),
    ("application/json;q=0.5, text/xml", "text/xml"),
    ("text/plain;q=0, application/xml", "application/xml"),
    ("image/png", None),
    ("not a media range", None),
    ("application/json;q=high", None),
])
def test_accept_picks_the_result_format(accept: str | None, expected: str | None) -> None:
    assert best_format(accept) == expected


def test_delete_after_wins_over_delete_at_and_becomes_one() -> None:
    before = int(time.time())
    got = requested_delete_at({"X-Delete-After": "60", "X-Delete-At": "not even a number"})
    assert got is not None and before + 60 <= got <= int(time.time()) + 60


def test_no_header_asks_for_nothing_and_far_futures_are_clamped() -> None:
    assert requested_delete_at({}) is None
    assert requested_delete_at({"X-Delete-At": str(10 ** 12)}) == MAX_DELETE_AT
    with pytest.raises(SwiftError) as exc:
        requested_delete_at({"X-Delete-At": ""})
    assert (exc.value.status, exc.value.body) == (400, "Non-integer X-Delete-At")


def test_index_names_sort_due_entries_first_within_a_queue() -> None:
    early, late = ExpiryIndex.entry_name(999, "a/b/k"), ExpiryIndex.entry_name(1_000_000_000, "a/b/k")
    assert early.split("/", 1)[0] == late.split("/", 1)[0]  # one object: one queue
    assert early < late and early.endswith("/0000000999/a/b/k")
