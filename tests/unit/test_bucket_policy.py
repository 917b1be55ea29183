"""The bucket policy language: what a policy is refused for, and how its statements decide
(Deny wins, principals, wildcards, conditions — a missing key included)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgestore.model.policy import PolicyError, Principal, parse_policy

ALICE = Principal("farm", "alice")
BOB = Principal("other", "bob")
ANYONE = Principal(None)
OBJ = "arn:aws:s3:::photos/lift/1.jpg"


def policy(*statements: dict[str, Any]) -> Any:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}), "photos")


def allow(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*",
            **fields}


def test_an_allow_for_everyone_reaches_anonymous_callers_and_a_deny_wins() -> None:
    public = policy(allow())
    assert public.decide(ANYONE, "s3:GetObject", OBJ, {}) == "Allow"
    assert public.decide(ANYONE, "s3:PutObject", OBJ, {}) is None
    assert public.decide(ANYONE, "s3:GetObject", "arn:aws:s3:::photos", {}) is None
    assert public.public()
    guarded = policy(allow(), {"Effect": "Deny", "Principal": {"AWS": ["arn:aws:iam::other:root"]},
                               "Action": "s3:*", "Resource": ["arn:aws:s3:::photos/lift/*"]})
    assert guarded.decide(BOB, "s3:GetObject", OBJ, {}) == "Deny"
    assert guarded.decide(ALICE, "s3:GetObject", OBJ, {}) == "Allow"


def test_principals_name_accounts_and_users() -> None:
    for principal, alice, bob in (({"AWS": "farm"}, True, False),
                                  ({"AWS": "arn:aws:iam::farm:root"}, True, False),
                                  ({"AWS": ["arn:aws:iam::farm:user/alice"]}, True, False),
                                  ({"AWS": ["arn:aws:iam::farm:user/carol"]}, False, False),
                                  ({"AWS": "*"}, True, True)):
        p = policy(allow(Principal=principal))
        said = [p.decide(who, "s3:GetObject", OBJ, {}) == "Allow" for who in (ALICE, BOB)]
        assert said == [alice, bob], principal
        assert p.decide(ANYONE, "s3:GetObject", OBJ, {}) == ("Allow" if principal == {"AWS": "*"} else None)
    negated = policy({"Effect": "Deny", "NotPrincipal": {"AWS": "farm"}, "Action": "s3:*",
                      "Resource": "arn:aws:s3:::photos/*"})
    assert negated.decide(BOB, "s3:GetObject", OBJ, {}) == "Deny"
    assert negated.decide(ALICE, "s3:GetObject", OBJ, {}) is None


def test_wildcards_in_actions_ignore_case_and_in_resources_do_not() -> None:
    p = policy(allow(Action="s3:get*", Resource="arn:aws:s3:::photos/lift/?.jpg"))
    assert p.decide(ANYONE, "s3:GetObjectVersion", OBJ, {}) == "Allow"
    assert p.decide(ANYONE, "s3:GetObject", "arn:aws:s3:::photos/lift/12.jpg", {}) is None
    assert p.decide(ANYONE, "s3:GetObject", "arn:aws:s3:::photos/LIFT/1.jpg", {}) is None
    statement = {"Effect": "Allow", "Principal": "*", "NotAction": "s3:Delete*", "Resource": "arn:aws:s3:::photos/*"}
    not_delete = parse_policy(json.dumps({"Statement": statement}), "photos")
    assert not_delete.decide(ANYONE, "s3:PutObject", OBJ, {}) == "Allow"
    assert not_delete.decide(ANYONE, "s3:DeleteObject", OBJ, {}) is None


def test_conditions() -> None:
    lan = policy(allow(Condition={"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.1.0/24"]}}))
    assert lan.decide(ANYONE, "s3:GetObject", OBJ, {"aws:sourceip": "10.1.2.3"}) == "Allow"
    assert lan.decide(ANYONE, "s3:GetObject", OBJ, {"aws:sourceip": "8.8.8.8"}) is None
    assert lan.decide(ANYONE, "s3:GetObject", OBJ, {}) is None  # no such key: no match
    assert not lan.public()
    tls_only = policy(allow(), {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                                "Resource": "arn:aws:s3:::photos/*",
                                "Condition": {"Bool": {"aws:SecureTransport": False}}})
    assert tls_only.decide(ANYONE, "s3:GetObject", OBJ, {"aws:securetransport": "false"}) == "Deny"
    assert tls_only.decide(ANYONE, "s3:GetObject", OBJ, {"aws:securetransport": "true"}) == "Allow"
    listing = policy(allow(Action="s3:ListBucket", Resource="arn:aws:s3:::photos",
                           Condition={"StringLike": {"s3:prefix": ["public/*", ""]}}))
    assert listing.decide(ANYONE, "s3:ListBucket", "arn:aws:s3:::photos", {"s3:prefix": "public/a"}) == "Allow"
    assert listing.decide(ANYONE, "s3:ListBucket", "arn:aws:s3:::photos", {"s3:prefix": "private/"}) is None
    negated = policy(allow(Condition={"StringNotEquals": {"aws:Referer": "https://spam.example"}}))
    assert negated.decide(ANYONE, "s3:GetObject", OBJ, {}) == "Allow"  # negated, key missing: holds
    if_exists = policy(allow(Condition={"StringEqualsIfExists": {"aws:Referer": "https://site.example"}}))
    assert if_exists.decide(ANYONE, "s3:GetObject", OBJ, {}) == "Allow"
    assert if_exists.decide(ANYONE, "s3:GetObject", OBJ, {"aws:referer": "https://x.example"}) is None


@pytest.mark.parametrize("document, unsupported", [
    ("not json", False),
    ({"Statement": []}, False),
    ({"Version": "2020-01-01", "Statement": [allow()]}, False),
    ({"Statement": [allow(Effect="Maybe")]}, False),
    ({"Statement": [allow(Resource="arn:aws:s3:::other-bucket/*")]}, False),
    ({"Statement": [allow(Action="iam:CreateUser")]}, False),
    ({"Statement": [allow(Principal={"AWS": "not an arn/at:all"})]}, False),
    ({"Statement": [{k: v for k, v in allow().items() if k != "Principal"}]}, False),
    ({"Statement": [allow(Condition={"StringEquals": {"s3:ExistingObjectTag/team": "a"}})]}, True),
    ({"Statement": [allow(Condition={"ForAnyValue:StringEquals": {"aws:Referer": "a"}})]}, True),
    ({"Statement": [allow(Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}})]}, True),
    ({"Statement": [allow(Principal={"Service": "logging.s3.amazonaws.com"})]}, True),
])
def test_policies_we_cannot_read_rightly_are_refused(document: Any, unsupported: bool) -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy(document if isinstance(document, str) else json.dumps(document), "photos")
    assert exc.value.unsupported == unsupported
