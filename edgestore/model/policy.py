"""Bucket policies: the JSON access policy language of S3, for one bucket.

A policy is a list of statements, each allowing or denying some actions (`s3:GetObject`,
wildcards allowed) on some resources (`arn:aws:s3:::bucket/photos/*`) to some principals
(`*` for everyone, anonymous callers included; `arn:aws:iam::ACCOUNT:root` for every user
of an account; `arn:aws:iam::ACCOUNT:user/NAME` for one user; a bare `ACCOUNT`), when its
conditions hold. Evaluation as in AWS: a matching Deny wins; otherwise a matching Allow
allows; otherwise the policy says nothing (the ACLs and ownership decide).

Conditions are refused when they use an operator or key this module does not evaluate:
a condition read wrongly could open a bucket or fail to close it, so an unsupported one is
an error at PutBucketPolicy, never a silent mismatch.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = ["Policy", "PolicyError", "Principal", "parse_policy", "MAX_POLICY_BYTES"]

MAX_POLICY_BYTES = 20 * 1024
VERSIONS = ("2012-10-17", "2008-10-17")
# Condition keys a request's context can supply (lower-case, as AWS compares them).
CONTEXT_KEYS = {"aws:sourceip", "aws:securetransport", "aws:referer", "aws:useragent", "aws:username",
                "aws:principalaccount", "aws:principaltype", "s3:prefix", "s3:delimiter", "s3:max-keys",
                "s3:x-amz-acl", "s3:versionid"}


class PolicyError(ValueError):
    """A policy we refuse; ``unsupported``: well-formed, but using what is not built."""

    def __init__(self, message: str, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True)
class Principal:
    """Who is asking: an account's user, or anonymous (account None)."""
    account: str | None
    user: str | None = None


def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM wildcards: * any run of characters, ? one; nothing else is special."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _strings(value: Any, what: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        raise PolicyError(f"Policy has an invalid {what}")
    return values


def _principal_matcher(value: Any) -> Callable[[Principal], bool]:
    if value == "*":
        return lambda who: True
    if not isinstance(value, dict) or not value:
        raise PolicyError("Policy has an invalid principal")
    if set(value) != {"AWS"}:
        raise PolicyError(f"Principal type {sorted(set(value) - {'AWS'})[0]} is not supported", unsupported=True)
    everyone, accounts, users = False, set(), set()
    for entry in _strings(value["AWS"], "principal"):
        if entry == "*":
            everyone = True
        elif re.fullmatch(r"[^:/]+", entry):
            accounts.add(entry)
        elif match := re.fullmatch(r"arn:aws:iam::([^:]+):root", entry):
            accounts.add(match.group(1))
        elif match := re.fullmatch(r"arn:aws:iam::([^:]+):user/(.+)", entry):
            users.add((match.group(1), match.group(2)))
        else:
            raise PolicyError(f"Invalid principal in policy: {entry[:100]}")
    return lambda who: everyone or (who.account is not None and (
        who.account in accounts or (who.account, who.user) in users))


# -- conditions -------------------------------------------------------------------------

def _ip_in(value: str, networks: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, list[str]], bool]:
    def test(value: str, wanted: list[str]) -> bool:
        number = _number(value)
        return number is not None and any((w := _number(x)) is not None and compare(number, w) for x in wanted)
    return test


# operator -> (test of one request value against the policy's values, negated)
_OPERATORS: dict[str, tuple[Callable[[str, list[str]], bool], bool]] = {
    "stringequals": (lambda v, w: v in w, False),
    "stringnotequals": (lambda v, w: v in w, True),
    "stringequalsignorecase": (lambda v, w: v.lower() in {x.lower() for x in w}, False),
    "stringnotequalsignorecase": (lambda v, w: v.lower() in {x.lower() for x in w}, True),
    "stringlike": (lambda v, w: any(_glob(x, False).fullmatch(v) for x in w), False),
    "stringnotlike": (lambda v, w: any(_glob(x, False).fullmatch(v) for x in w), True),
    "numericequals": (_numeric(lambda a, b: a == b), False),
    "numericnotequals": (_numeric(lambda a, b: a == b), True),
    "numericlessthan": (_numeric(lambda a, b: a < b), False),
    "numericlessthanequals": (_numeric(lambda a, b: a <= b), False),
    "numericgreaterthan": (_numeric(lambda a, b: a > b), False),
    "numericgreaterthanequals": (_numeric(lambda a, b: a >= b), False),
    "bool": (lambda v, w: v.lower() in {x.lower() for x in w}, False),
    "ipaddress": (_ip_in, False),
    "notipaddress": (_ip_in, True),
}


@dataclass(frozen=True)
class _Condition:
    operator: str
    key: str
    values: list[str]
    if_exists: bool

    def holds(self, context: Mapping[str, str]) -> bool:
        value = context.get(self.key)
        if self.operator == "null":  # "true": the key must be absent
            return (value is None) == (self.values[0].lower() == "true")
        test, negated = _OPERATORS[self.operator]
        if value is None:
            return self.if_exists or negated
        return test(value, self.values) != negated


def _conditions(block: Any) -> list[_Condition]:
    if not isinstance(block, dict):
        raise PolicyError("Policy has an invalid condition block")
    found = []
    for raw_operator, pairs in block.items():
        operator = str(raw_operator).lower()
        if operator.startswith(("forallvalues:", "foranyvalue:")):
            raise PolicyError(f"Condition operator {raw_operator} is not supported", unsupported=True)
        if_exists = operator.endswith("ifexists") and operator != "null"
        base = operator[:-len("ifexists")] if if_exists else operator
        if base not in _OPERATORS and base != "null":
            raise PolicyError(f"Condition operator {raw_operator} is not supported", unsupported=True)
        if not isinstance(pairs, dict) or not pairs:
            raise PolicyError("Policy has an invalid condition block")
        for raw_key, raw_values in pairs.items():
            key = str(raw_key).lower()
            if key not in CONTEXT_KEYS:
                raise PolicyError(f"Condition key {raw_key} is not supported", unsupported=True)
            values = [str(v).lower() if isinstance(v, bool) else str(v)
                      for v in (raw_values if isinstance(raw_values, list) else [raw_values])]
            if base in ("ipaddress", "notipaddress"):
                for network in values:
                    try:
                        ipaddress.ip_network(network, strict=False)
                    except ValueError:
                        raise PolicyError(f"Invalid IP address in policy: {network[:60]}") from None
            found.append(_Condition(base, key, values, if_exists))
    return found


# -- statements -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Statement:
    allow: bool
    principal: Callable[[Principal], bool]
    principal_negated: bool
    actions: list[re.Pattern[str]]
    actions_negated: bool
    resources: list[re.Pattern[str]]
    resources_negated: bool
    conditions: list[_Condition]

    def applies(self, who: Principal, action: str, resource: str, context: Mapping[str, str]) -> bool:
        return (self.principal(who) != self.principal_negated
                and any(p.fullmatch(action) for p in self.actions) != self.actions_negated
                and any(p.fullmatch(resource) for p in self.resources) != self.resources_negated
                and all(c.holds(context) for c in self.conditions))


def _one_of(raw: dict[str, Any], name: str) -> tuple[Any, bool]:
    """The statement's NAME or NotNAME (exactly one)."""
    if (name in raw) == (f"Not{name}" in raw):
        raise PolicyError(f"Policy statement must have exactly one of {name} or Not{name}")
    return (raw[name], False) if name in raw else (raw[f"Not{name}"], True)


def _statement(raw: Any, bucket: str) -> _Statement:
    if not isinstance(raw, dict):
        raise PolicyError("Policy has an invalid statement")
    known = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource",
             "Condition"}
    if set(raw) - known:
        raise PolicyError(f"Unknown field {sorted(set(raw) - known)[0]} in policy statement")
    if raw.get("Effect") not in ("Allow", "Deny"):
        raise PolicyError("Policy statement has an invalid Effect")
    principal, principal_negated = _one_of(raw, "Principal")
    actions, actions_negated = _one_of(raw, "Action")
    resources, resources_negated = _one_of(raw, "Resource")
    for action in _strings(actions, "action"):
        if action != "*" and not action.lower().startswith("s3:"):
            raise PolicyError("Policy has invalid action")
    for resource in _strings(resources, "resource"):
        if resource != f"arn:aws:s3:::{bucket}" and not resource.startswith(f"arn:aws:s3:::{bucket}/"):
            raise PolicyError("Policy has invalid resource")  # (AWS: a policy covers its own bucket only)
    return _Statement(raw["Effect"] == "Allow", _principal_matcher(principal), principal_negated,
                      [_glob(a, True) for a in _strings(actions, "action")], actions_negated,
                      [_glob(r, False) for r in _strings(resources, "resource")], resources_negated,
                      _conditions(raw.get("Condition", {})))


@dataclass(frozen=True)
class Policy:
    text: str
    statements: tuple[_Statement, ...]

    def decide(self, who: Principal, action: str, resource: str, context: Mapping[str, str]) -> str | None:
        """"Deny", "Allow", or None when no statement applies."""
        applying = [s for s in self.statements if s.applies(who, action, resource, context)]
        if any(not s.allow for s in applying):
            return "Deny"
        return "Allow" if applying else None

    def public(self) -> bool:
        """Whether some unconditional Allow lets anyone in (GetBucketPolicyStatus)."""
        anyone = Principal(None)
        return any(s.allow and s.principal(anyone) != s.principal_negated and not s.conditions
                   for s in self.statements)


def parse_policy(text: str, bucket: str) -> Policy:
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise PolicyError(f"Policies must be at most {MAX_POLICY_BYTES} bytes")
    try:
        document = json.loads(text)
    except ValueError:
        raise PolicyError("Policies must be valid JSON and the first byte must be '{'") from None
    if not isinstance(document, dict):
        raise PolicyError("Policies must be valid JSON and the first byte must be '{'")
    if document.get("Version", VERSIONS[1]) not in VERSIONS:
        raise PolicyError("The policy language version is not supported")
    raw = document.get("Statement")
    statements = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else None
    if not statements:
        raise PolicyError("Missing required field Statement")
    return Policy(text, tuple(_statement(s, bucket) for s in statements))

