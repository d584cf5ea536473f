"""Least privilege, measured: which of the deployed stack's grants were used.

A grant is one (action pattern, resource pattern) of an Allow statement: in a role's
identity policies, or in a resource-based policy (a function's, a queue's, a bucket's, a
key's). It was used when an allowed request matched it through that statement
(`Enforcer.used`). `record(deployment)` compares the grants of one local cloud with what it
allowed, and adds the result to the current tally (`TALLY`, or the one `tallying` names),
under names that do not change from one deployment to the next: physical names and ARNs are
written back as the logical ids they came from (`{DataLakeDataDE92A33D.Arn}/raw/*`).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.local.authz import principals, stack
from infra.local.authz.enforcer import Use
from infra.local.authz.policy import Policy

if TYPE_CHECKING:
    from infra.local.deployer import Deployment


@dataclass(frozen=True, order=True)
class Grant:
    holder: str
    """`role <logical id>`, or the resource whose policy it is (`function <logical id>`)."""
    action: str
    resource: str

    def line(self) -> str:
        return f"{self.holder} | {self.action} | {self.resource}"


@dataclass
class Tally:
    granted: set[Grant] = field(default_factory=set)
    used: set[Grant] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def unused(self) -> list[Grant]:
        return sorted(self.granted - self.used)

    def add(self, granted: Iterable[Grant], used: Iterable[Grant]) -> None:
        with self._lock:
            self.granted.update(granted)
            self.used.update(used)

    def clear(self) -> None:
        with self._lock:
            self.granted.clear()
            self.used.clear()

    def write(self, path: Path) -> None:
        """The tally as JSON: every grant, used or not."""
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "used": [grant.line() for grant in sorted(self.used & self.granted)],
            "unused": [grant.line() for grant in self.unused],
        }
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


TALLY = Tally()
_current: list[Tally] = [TALLY]


@contextmanager
def tallying(tally: Tally) -> Iterator[Tally]:
    """Local clouds stopped inside the block add to `tally` instead of `TALLY`: a test suite
    measures its own stacks, not those of other suites run in the same session."""
    _current.append(tally)
    try:
        yield tally
    finally:
        _current.remove(tally)


@dataclass(frozen=True)
class _Statement:
    holder: str
    principal: str
    """The role's ARN for an identity policy; empty for a resource-based policy."""
    policy: str
    index: int
    actions: tuple[str, ...]
    resources: tuple[str, ...]


def record(deployment: Deployment, used: Iterable[Use], account: str) -> None:
    """Add one local cloud's grants and the ones its requests used to the current tally."""
    names = _logical_names(deployment)
    statements = list(_statements(deployment, account))
    granted: set[Grant] = set()
    hits: set[Grant] = set()
    uses = list(used)
    for statement in statements:
        for action in statement.actions:
            for resource in statement.resources:
                grant = Grant(statement.holder, action, _logical(resource, names))
                granted.add(grant)
                if any(_uses(statement, action, resource, use) for use in uses):
                    hits.add(grant)
    _current[-1].add(granted, hits)


def _uses(statement: _Statement, action: str, resource: str, use: Use) -> bool:
    if (statement.policy, statement.index) not in use.statements:
        return False
    if statement.principal and statement.principal != use.principal:
        return False
    from infra.local.authz.policy import _action_matches, _resource_matches

    return _action_matches(action, use.action) and _resource_matches(resource, use.resource)


def _statements(deployment: Deployment, account: str) -> Iterable[_Statement]:
    for logical_id, resource in deployment.resources.items():
        if resource.created is None:
            continue
        if resource.type == "AWS::IAM::Role":
            arn = str(resource.created.attributes.get("Arn", ""))
            role = principals.Principal(arn, arn, "role", account)
            for policy in principals.identity_policies(role):
                # AWS managed policies are AWS's to scope: only the stack's own grants count.
                if ":iam::aws:policy/" not in policy.name:
                    yield from _allows(f"role {logical_id}", arn, policy)
        else:
            found = _resource_arn(resource.type, resource.created.ref, resource.created.attributes)
            if found is None:
                continue
            policies, _ = stack.resource_policies(found, account)
            kind = resource.type.split("::")[1].lower()
            for policy in policies:
                yield from _allows(f"{kind} {logical_id}", "", policy)


def _allows(holder: str, principal: str, policy: Policy) -> Iterable[_Statement]:
    for index, statement in enumerate(policy.statements):
        if statement.get("Effect") != "Allow" or "Action" not in statement:
            continue
        resources = statement.get("Resource", "*")
        yield _Statement(
            holder,
            principal,
            policy.name,
            index,
            tuple(_list(statement["Action"])),
            tuple(_list(resources)),
        )


def _resource_arn(kind: str, ref: str, attributes: dict[str, Any]) -> str | None:
    if kind == "AWS::Lambda::Function":
        return str(attributes.get("Arn") or "") or None
    if kind == "AWS::S3::Bucket":
        return f"arn:aws:s3:::{ref}"
    if kind == "AWS::KMS::Key":
        return str(attributes.get("Arn") or "") or None
    if kind == "AWS::SQS::Queue":
        return str(attributes.get("Arn") or "") or None
    if kind == "AWS::SNS::Topic":
        return ref
    return None


def _list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _logical_names(deployment: Deployment) -> list[tuple[str, str]]:
    """(physical value, `{LogicalId}` or `{LogicalId.Attribute}`), longest value first."""
    found: dict[str, str] = {}
    for logical_id, resource in deployment.resources.items():
        if resource.created is None:
            continue
        for name, value in resource.created.attributes.items():
            if isinstance(value, str) and len(value) > 8:
                found.setdefault(value, f"{{{logical_id}.{name}}}")
        if len(resource.created.ref) > 8:
            found.setdefault(resource.created.ref, f"{{{logical_id}}}")
    return sorted(found.items(), key=lambda item: len(item[0]), reverse=True)


def _logical(text: str, names: list[tuple[str, str]]) -> str:
    for value, name in names:
        if value in text:
            text = text.replace(value, name)
    return re.sub(r"\d{12}", "{AWS::AccountId}", text)


UNUSED_START = "<!-- unused-grants:start -->"
UNUSED_END = "<!-- unused-grants:end -->"


@dataclass(frozen=True)
class Documented:
    """A row of the docs' table of grants no test uses: patterns (`*` any text) for the
    holder, the action and the resource, and the path that needs the grant."""

    holder: str
    action: str
    resource: str
    why: str

    def covers(self, grant: Grant) -> bool:
        from fnmatch import fnmatchcase

        return (
            fnmatchcase(grant.holder, self.holder)
            and fnmatchcase(grant.action, self.action)
            and fnmatchcase(grant.resource, self.resource)
        )


def documented(markdown: str) -> list[Documented]:
    """The rows of the table between the unused-grants markers of a docs page."""
    start, end = markdown.find(UNUSED_START), markdown.find(UNUSED_END)
    if start < 0 or end < start:
        raise ValueError("the docs have no unused-grants table (its markers are missing)")
    rows = []
    for line in markdown[start:end].splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("holder", "") or set(cells[0]) <= {"-"}:
            continue
        rows.append(Documented(*cells))
    return rows


def check(tally: Tally, rows: list[Documented]) -> list[str]:
    """What is wrong: an unused grant the docs do not list, or a row that lists none."""
    problems = [
        f"unused grant not in the docs: {grant.line()}"
        for grant in tally.unused
        if not any(row.covers(grant) for row in rows)
    ]
    problems += [
        f"the docs list a grant no longer unused (or granted): "
        f"{row.holder} | {row.action} | {row.resource}"
        for row in rows
        if not any(row.covers(grant) for grant in tally.unused)
    ]
    return problems
