"""TempAuth's container ACL grammar: cleaning, parsing and referrer matching, including
the examples of Swift's documentation."""

from __future__ import annotations

import pytest

from edgestore.api.swift.acl import clean_acl, parse_acl, referrer_allowed


@pytest.mark.parametrize("messy,clean", [
    ("bob, sue", "bob,sue"), ("bob , sue", "bob,sue"), ("bob,,,sue", "bob,sue"),
    (".referrer : *", ".r:*"), (".ref:*.example.com", ".r:.example.com"), (".r:*, .rlistings", ".r:*,.rlistings"),
    (".r:-thief.com", ".r:-thief.com"), (".r: - *.thief.com", ".r:-.thief.com"), ("acct:user", "acct:user"),
    ("", ""),
])
def test_clean(messy: str, clean: str) -> None:
    assert clean_acl("X-Container-Read", messy) == clean


@pytest.mark.parametrize("header,value", [
    ("X-Container-Read", ".r:"), ("X-Container-Read", ".r:-"), ("X-Container-Read", ".r:."),
    ("X-Container-Read", ".r:*."), ("X-Container-Read", ".unknown:x"), ("X-Container-Write", ".r:*"),
])
def test_malformed(header: str, value: str) -> None:
    with pytest.raises(ValueError):
        clean_acl(header, value)


def test_parse_splits_referrers_from_groups() -> None:
    acl = parse_acl(".r:*,.rlistings,acct:bob,.r:-bad.com")
    assert acl.referrers == ("*", "-bad.com")
    assert acl.groups == frozenset({".rlistings", "acct:bob"})


@pytest.mark.parametrize("referer,allowed", [
    ("http://www.example.com/index.html", True), ("http://example.com/", False),
    ("http://thief.example.com/", False), (None, False), ("not a url", False),
])
def test_referrer_rules_apply_in_order(referer: str | None, allowed: bool) -> None:
    assert referrer_allowed(referer, (".example.com", "-thief.example.com")) is allowed


def test_star_admits_requests_without_referer_unless_denied() -> None:
    assert referrer_allowed(None, ("*",))
    assert not referrer_allowed("http://bad.com/", ("*", "-bad.com"))
    assert not referrer_allowed(None, ())
