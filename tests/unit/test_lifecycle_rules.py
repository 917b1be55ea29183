"""Lifecycle rule semantics: which objects a filter takes, and S3's rounding of expiry
times up to midnight UTC."""

from __future__ import annotations

import calendar

from edgestore.model.lifecycle import DAY_S, expires_at, matches, midnight_after, noncurrent_expires_at

NOON = calendar.timegm((2026, 3, 10, 12, 0, 0, 0, 0, 0))
MIDNIGHT = calendar.timegm((2026, 3, 10, 0, 0, 0, 0, 0, 0))
RULE = {"enabled": True, "prefix": "cam/", "tags": {"keep": "no"}, "size_gt": 10, "size_lt": 100,
        "days": 2, "date": None, "noncurrent_days": 1}


def test_days_round_up_to_the_next_midnight_utc() -> None:
    assert midnight_after(MIDNIGHT) == MIDNIGHT
    assert midnight_after(MIDNIGHT + 1) == MIDNIGHT + DAY_S
    assert expires_at(RULE, NOON) == MIDNIGHT + 3 * DAY_S  # noon + 2 days, up to the midnight after
    assert noncurrent_expires_at(RULE, NOON) == MIDNIGHT + 2 * DAY_S
    assert expires_at({**RULE, "days": None, "date": MIDNIGHT}, NOON) == MIDNIGHT
    assert expires_at({**RULE, "days": None}, NOON) is None


def test_a_filter_takes_only_what_all_its_conditions_name() -> None:
    assert matches(RULE, "cam/a", 50, {"keep": "no", "other": "x"})
    assert not matches(RULE, "logs/a", 50, {"keep": "no"})
    assert not matches(RULE, "cam/a", 50, {"keep": "yes"})
    assert not matches(RULE, "cam/a", 50, {})
    assert not matches(RULE, "cam/a", 10, {"keep": "no"})   # greater than 10, strictly
    assert not matches(RULE, "cam/a", 100, {"keep": "no"})  # less than 100, strictly
    assert not matches({**RULE, "enabled": False}, "cam/a", 50, {"keep": "no"})
    assert matches({"enabled": True, "prefix": "", "tags": {}, "size_gt": None, "size_lt": None}, "any", 0, {})
