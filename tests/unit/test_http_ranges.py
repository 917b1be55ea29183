"""Range headers as Swift reads them (parse_byte_ranges), beside the single-range parser
S3 uses, which must keep its behaviour; and the HTTP dates both APIs send."""

from __future__ import annotations

from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgestore.api.http import UnsatisfiableRange, imf_fixdate, parse_byte_range, parse_byte_ranges


@pytest.mark.parametrize("header, spans", [
    ("bytes=0-9", [(0, 9)]),
    ("bytes=0-9,20-29,-5", [(0, 9), (20, 29), (95, 99)]),
    ("bytes=90-", [(90, 99)]),
    ("bytes=-500", [(0, 99)]),             # a suffix longer than the body is the whole body
    ("bytes=50-5000", [(50, 99)]),          # an end past the body is clipped
    ("bytes=5-9,100-200", [(5, 9)]),        # the unsatisfiable one is dropped
    ("Bytes = 1-2 , 4-5", [(1, 2), (4, 5)]),  # spaces and case as swob allows
    ("bytes=100-", []),                     # nothing satisfiable: 416
    ("bytes=-0", []),
    ("bytes=0-50,10-60,20-70", []),         # three overlapping pairs: refused
    ("bytes=9-9,8-8,7-7,6-6,5-5,4-4,3-3,2-2", []),  # eight out of order: refused
    ("bytes=9-9,8-8,7-7,6-6,5-5,4-4,3-3", [(9 - i, 9 - i) for i in range(7)]),
    ("bytes=" + ",".join(f"{i}-{i}" for i in range(51)), []),  # over 50 ranges: refused
    ("bytes=" + ",".join(f"{i}-{i}" for i in range(50)), [(i, i) for i in range(50)]),
    ("bytes=5-3", None), ("bytes=1-2,x", None), ("bytes=-", None), ("items=0-1", None), ("", None),
    ("bytes=--1", None), ("bytes=1", None),
])
def test_swift_ranges(header: str, spans: list[tuple[int, int]] | None) -> None:
    assert parse_byte_ranges(header, 100) == spans


def test_no_header_and_empty_body() -> None:
    assert parse_byte_ranges(None, 10) is None
    assert parse_byte_ranges("bytes=-5", 0) == [] and parse_byte_ranges("bytes=0-", 0) == []


def test_single_range_parser_is_unchanged() -> None:
    assert parse_byte_range("bytes=0-9", 100) == (0, 9)
    assert parse_byte_range("bytes=0-9,20-29", 100) is None  # S3 serves the whole object
    with pytest.raises(UnsatisfiableRange):
        parse_byte_range("bytes=100-", 100)


@given(st.integers(min_value=0, max_value=253402300799))  # up to the end of year 9999
def test_imf_fixdate_writes_what_email_utils_writes(seconds: int) -> None:
    assert imf_fixdate(seconds) == formatdate(seconds, usegmt=True)
