"""IAM policy evaluation, as AWS documents it for a request within one account.

A request is a principal, an action (`s3:GetObject`), a resource ARN and a context of
condition keys (`aws:SecureTransport`, `dynamodb:LeadingKeys`, ...). `evaluate` applies:

1. an explicit Deny in any applicable policy (identity or resource) denies;
2. otherwise an Allow in an identity policy, or in a resource policy that names the principal
   (its role ARN, or `*`), allows; a resource policy naming the account (`:root`) only
   delegates to identity policies;
3. KMS is the exception: the key policy must allow, itself or by delegating to the account's
   IAM policies (`arn:aws:iam::<account>:root`), and an identity policy then allows too;
4. anything else is an implicit deny.

Statements match on Action/NotAction (case-insensitive, `*` and `?` wildcards), Resource/
NotResource (case-sensitive wildcards), Principal/NotPrincipal (resource policies), and
Condition: the operators AWS documents (String*, Arn*, Numeric*, Date*, Bool, Null, IpAddress,
Binary*), `...IfExists`, and the `ForAllValues:`/`ForAnyValue:` set operators. A condition
operator or key the evaluator does not know makes the request denied, with a message naming
it: never silently allowed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

_STRING_OPERATORS = {
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
}
_ARN_OPERATORS = {"ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"}
_NUMERIC_OPERATORS = {
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
}
_DATE_OPERATORS = {
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
}
_OTHER_OPERATORS = {"Bool", "Null", "IpAddress", "NotIpAddress", "BinaryEquals"}
OPERATORS = (
    _STRING_OPERATORS | _ARN_OPERATORS | _NUMERIC_OPERATORS | _DATE_OPERATORS | (_OTHER_OPERATORS)
)
"""Condition operators the evaluator knows (each also with the `IfExists` suffix, but Null)."""
_NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "ArnNotEquals",
    "ArnNotLike",
    "NumericNotEquals",
    "DateNotEquals",
    "NotIpAddress",
}


class UnsupportedCondition(Exception):
    """A statement's condition uses an operator or key the evaluator cannot decide."""


@dataclass(frozen=True)
class Request:
    principal: str
    """The caller's ARN: a role (`arn:aws:iam::123:role/name`), a service
    (`logs.amazonaws.com`) or an account root."""
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)
    """Condition keys of the request (case-insensitive names), each a string, a bool, a
    number or a list of strings (multivalued keys)."""
    known_keys: frozenset[str] = frozenset()
    """Condition keys (lower case) that may apply to this action but are absent from the
    request: a condition on one of them is decided as on AWS (the key is missing); any other
    key the context lacks is unsupported."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    """`allowed by <policy>`, `explicitly denied by <policy>`, `no statement allows`, or why
    the evaluator could not decide."""
    matched: tuple[tuple[str, int], ...] = ()
    """The allowing statements: (policy name, statement index)."""


@dataclass(frozen=True)
class Policy:
    name: str
    document: Mapping[str, Any]

    @property
    def statements(self) -> list[Mapping[str, Any]]:
        statements = self.document.get("Statement", [])
        return [statements] if isinstance(statements, dict) else list(statements)


def evaluate(
    request: Request,
    identity: Sequence[Policy],
    resource: Sequence[Policy] = (),
    *,
    account: str,
    kms_key: bool = False,
) -> Decision:
    """Decide `request` against the principal's `identity` policies and the resource's
    `resource` policies (bucket, key, function, queue, topic policies)."""
    context = {key.lower(): value for key, value in request.context.items()}
    try:
        denied, allows, _ = _scan(identity, request, context, None)
        if denied is None:
            denied, resource_allows, delegated = _scan(resource, request, context, account)
    except UnsupportedCondition as exc:
        return Decision(False, f"the local evaluator cannot decide it: {exc}")
    if denied is not None:
        return Decision(False, f"explicitly denied by {denied}")
    if kms_key:
        if resource_allows:
            return Decision(True, f"allowed by {resource_allows[0][0]}", tuple(resource_allows))
        if delegated and allows:
            return Decision(True, f"allowed by {allows[0][0]}", tuple(allows))
        return Decision(False, "no statement of the key policy (or, through it, of IAM) allows")
    for found in (resource_allows, allows):
        if found:
            return Decision(True, f"allowed by {found[0][0]}", tuple(found))
    return Decision(False, "no identity-based or resource-based policy allows it")


def _scan(
    policies: Sequence[Policy],
    request: Request,
    context: dict[str, Any],
    account: str | None,
) -> tuple[str | None, list[tuple[str, int]], bool]:
    """The first explicit Deny that applies (`policy (#n)`), the Allow statements that apply,
    and whether a resource policy delegates to the account (`account` given: resource
    policies, whose statements must name the principal)."""
    allows: list[tuple[str, int]] = []
    delegated = False
    for policy in policies:
        for index, statement in enumerate(policy.statements):
            if not _applies(statement, request, context):
                continue
            names = (
                "direct"
                if account is None
                else _principal_match(statement, request.principal, account)
            )
            if names is None:
                continue
            if statement.get("Effect") == "Deny":
                return f"{policy.name} (#{index})", allows, delegated
            if names == "account":
                delegated = True
            else:
                allows.append((policy.name, index))
    return None, allows, delegated


def _applies(statement: Mapping[str, Any], request: Request, context: dict[str, Any]) -> bool:
    if not _covers(statement, "Action", _action_matches, request.action):
        return False
    if not _covers(statement, "Resource", _resource_matches, request.resource):
        return False
    return _conditions(statement.get("Condition") or {}, context, request.known_keys)


def _covers(
    statement: Mapping[str, Any], element: str, matches: Callable[[str, str], bool], value: str
) -> bool:
    """Whether the statement's `element` (`Action`), or its negation (`NotAction`), covers
    `value`; a statement with neither covers every value."""
    if element in statement:
        return any(matches(pattern, value) for pattern in _list(statement[element]))
    if f"Not{element}" in statement:
        return not any(matches(pattern, value) for pattern in _list(statement[f"Not{element}"]))
    return True


def _principal_match(statement: Mapping[str, Any], principal: str, account: str) -> str | None:
    """How a resource policy's statement names the caller: "direct" (its ARN, its role's ARN,
    a service it is, or `*`), "account" (the account root: delegation to IAM), or None."""
    if "NotPrincipal" in statement:
        named = _principal_values(statement["NotPrincipal"])
        return None if _names(named, principal, account) else "direct"
    if "Principal" not in statement:
        return None
    named = _principal_values(statement["Principal"])
    return _names(named, principal, account)


def _principal_values(value: Any) -> list[str]:
    if value == "*":
        return ["*"]
    values: list[str] = []
    for kind, names in dict(value).items():
        for name in _list(names):
            values.append(
                str(name)
                if kind != "AWS" or ":" in str(name) or name == "*"
                else (f"arn:aws:iam::{name}:root")
            )
    return values


def _names(named: Iterable[str], principal: str, account: str) -> str | None:
    role = _role_of(principal)
    for name in named:
        if name == "*" or name in (principal, role):
            return "direct"
        if name in (f"arn:aws:iam::{account}:root", account):
            return "account"
    return None


def _role_of(principal: str) -> str:
    """An assumed-role session's role ARN (`arn:aws:sts::1:assumed-role/r/s` -> the role)."""
    match = re.match(r"arn:aws:sts::(\d+):assumed-role/([^/]+)/", principal)
    return f"arn:aws:iam::{match.group(1)}:role/{match.group(2)}" if match else principal


def _action_matches(pattern: str, action: str) -> bool:
    return _wildcard(pattern.lower(), case_sensitive=True).fullmatch(action.lower()) is not None


def _resource_matches(pattern: str, resource: str) -> bool:
    return _wildcard(pattern, case_sensitive=True).fullmatch(resource) is not None


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    translated = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.compile(translated, 0 if case_sensitive else re.IGNORECASE)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# Conditions


def _conditions(block: Mapping[str, Any], context: dict[str, Any], known: frozenset[str]) -> bool:
    """Every operator's every key must hold (AND); a key holds when any value matches (OR),
    or, for a negated operator, when none does."""
    for raw_operator, keys in block.items():
        qualifier, _, operator = raw_operator.rpartition(":")
        if_exists = operator.endswith("IfExists") and operator != "IfExists"
        base = operator.removesuffix("IfExists") if if_exists else operator
        if base not in OPERATORS or qualifier not in ("", "ForAllValues", "ForAnyValue"):
            raise UnsupportedCondition(f"condition operator {raw_operator!r} is not supported")
        for key, expected in dict(keys).items():
            name = key.lower()
            present = name in context
            if not present and name not in known and base != "Null":
                raise UnsupportedCondition(
                    f"condition key {key!r} is not known for this request (operator {raw_operator})"
                )
            if not _holds(base, qualifier, if_exists, context.get(name), present, _list(expected)):
                return False
    return True


def _holds(
    operator: str,
    qualifier: str,
    if_exists: bool,
    actual: Any,
    present: bool,
    expected: list[Any],
) -> bool:
    if operator == "Null":
        wants_absent = str(expected[0]).lower() == "true"
        absent = not present or actual in (None, [], "")
        return absent == wants_absent
    if not present:
        if qualifier == "ForAllValues":
            return True
        # A negated operator (StringNotEquals, ArnNotEquals, ...) holds on a missing key.
        return if_exists or (not qualifier and operator in _NEGATED)
    values = [str(v) if not isinstance(v, bool) else str(v).lower() for v in _list(actual)]
    if qualifier == "ForAllValues":
        return all(_value_matches(operator, value, expected) for value in values)
    if qualifier == "ForAnyValue":
        return any(_value_matches(operator, value, expected) for value in values)
    if operator in _NEGATED:
        return all(_value_matches(operator, value, expected) for value in values)
    return any(_value_matches(operator, value, expected) for value in values)


def _value_matches(operator: str, value: str, expected: list[Any]) -> bool:
    """Does one request value satisfy the operator against the policy's values (any of them;
    for a negated operator, none of them)."""
    negated = operator in _NEGATED
    positive = _positive(operator)
    hit = any(_compare(positive, value, str(e)) for e in expected)
    return not hit if negated else hit


def _positive(operator: str) -> str:
    return {
        "StringNotEquals": "StringEquals",
        "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
        "StringNotLike": "StringLike",
        "ArnNotEquals": "ArnEquals",
        "ArnNotLike": "ArnLike",
        "NumericNotEquals": "NumericEquals",
        "DateNotEquals": "DateEquals",
        "NotIpAddress": "IpAddress",
    }.get(operator, operator)


def _compare(operator: str, value: str, expected: str) -> bool:
    if operator == "StringEquals":
        return value == expected
    if operator == "StringEqualsIgnoreCase":
        return value.lower() == expected.lower()
    if operator == "StringLike":
        return _like(expected, value)
    if operator in ("ArnEquals", "ArnLike"):
        return _arn_like(value, expected)
    if operator == "Bool":
        return value.lower() == expected.lower()
    if operator == "BinaryEquals":
        return value == expected
    if operator == "IpAddress":
        try:
            return ipaddress.ip_address(value) in ipaddress.ip_network(expected, strict=False)
        except ValueError:
            return False
    parsers: tuple[tuple[str, Callable[[str], Any]], ...] = (("Numeric", float), ("Date", _date))
    for kind, parse in parsers:
        if operator.startswith(kind):
            try:
                left, right = parse(value), parse(expected)
            except ValueError:
                return False
            return _ordered(operator.removeprefix(kind), left, right)
    raise UnsupportedCondition(f"condition operator {operator!r} is not supported")


def _ordered(relation: str, left: Any, right: Any) -> bool:
    return {
        "Equals": left == right,
        "LessThan": left < right,
        "LessThanEquals": left <= right,
        "GreaterThan": left > right,
        "GreaterThanEquals": left >= right,
    }[relation]


def _date(text: str) -> datetime:
    if text.isdigit():
        return datetime.fromtimestamp(int(text), tz=UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _arn_like(value: str, pattern: str) -> bool:
    """ARN matching: the six colon-separated parts compared one by one, wildcards allowed
    in each (the resource part may itself contain colons)."""
    value_parts, pattern_parts = value.split(":", 5), pattern.split(":", 5)
    if len(value_parts) != 6 or len(pattern_parts) != 6:
        return _like(pattern, value)
    return all(_like(p, v) for v, p in zip(value_parts, pattern_parts, strict=True))


def _like(pattern: str, value: str) -> bool:
    """IAM's wildcards: `*` any run of characters, `?` one; nothing else is special."""
    return _wildcard(pattern, case_sensitive=True).fullmatch(value) is not None
