"""What CloudFormation would replace or delete when a stack moves from one template to another,
and which of those resources hold data.

CloudFormation replaces a resource (creates a new one, then deletes the old one at cleanup)
when its `Type` changes or when a property it cannot update in place changes: the resource
provider schemas call those `createOnlyProperties`; cfn-lint ships the schemas of every region,
so the rules are read here without a network. A logical id missing from the new template is
deleted (a renamed or moved construct is a deletion plus a creation).

A property is compared as CloudFormation would resolve it, conservatively: equal literals are
equal; a `Ref`/`Fn::GetAtt`/`Fn::Sub` of a resource that is itself replaced or newly created
resolves to a new value (CloudFormation cascades the replacement); intrinsic values that
differ and cannot be resolved here make the resource one that "may replace". Custom resources
and types without a schema "may replace" on any property change (their provider decides).

`STATEFUL_RESOURCE_TYPES` is the one definition of the resources that hold data: the template
snapshot test records them (`tests/infra/stateful.json`), `mlops predeploy` refuses to replace
or delete them, and the prod stage retains them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from infra.local.intrinsics import references

STATEFUL_RESOURCE_TYPES: dict[str, tuple[str, ...]] = {
    "AWS::S3::Bucket": ("BucketName", "ObjectLockEnabled"),
    "AWS::DynamoDB::Table": ("TableName", "KeySchema", "LocalSecondaryIndexes"),
    "AWS::KMS::Key": ("KeySpec", "KeyUsage", "MultiRegion"),
    "AWS::SQS::Queue": ("QueueName", "FifoQueue"),
    "AWS::Kinesis::Stream": ("Name",),
    "AWS::KinesisFirehose::DeliveryStream": ("DeliveryStreamName", "DeliveryStreamType"),
    "AWS::Logs::LogGroup": ("LogGroupName",),
}
"""Resource types that hold data (objects, items, key material, messages, records, logs), each
with the properties CloudFormation cannot change in place (a replacement, or for a KMS key a
refused update), which the template snapshot records."""

# CloudFormation documents these as "Update requires: Replacement", but the provider schemas
# do not list them as create-only (the table's handler predates them).
DOCUMENTED_REPLACEMENTS: dict[str, tuple[str, ...]] = {
    "AWS::DynamoDB::Table": ("/properties/KeySchema", "/properties/LocalSecondaryIndexes"),
}
# Types whose properties are handed to a provider that may answer with a new physical id.
_CUSTOM = re.compile(r"^(Custom::|AWS::CloudFormation::CustomResource$)")
_MISSING = object()

Action = Literal["replace", "delete", "may replace"]


@dataclass(frozen=True)
class Change:
    logical_id: str
    type: str
    action: Action
    why: tuple[str, ...]
    """The property paths (or `Type`, or `removed from the template`) behind the action."""
    stateful: bool
    deletion_policy: str
    """The old resource's policy on this path: `DeletionPolicy` for a delete,
    `UpdateReplacePolicy` for a replacement (CloudFormation's default is Delete)."""

    @property
    def loses_data(self) -> bool:
        """A resource holding data that the stack would (or may: resolved conservatively)
        replace or delete: the stack moves on to a new, empty resource and deletes or orphans
        the old one."""
        return self.stateful

    def describe(self) -> str:
        """One line for a refusal: what happens to the resource and its data, and why."""
        policy = "DeletionPolicy" if self.action == "delete" else "UpdateReplacePolicy"
        fate = (
            "is kept, outside the stack"
            if self.deletion_policy in ("Retain", "RetainExceptOnCreate", "Snapshot")
            else "is deleted with its data"
        )
        if self.action == "delete":
            what = "deleted (no longer in the template: a renamed or moved construct starts empty)"
        else:
            what = "replaced" if self.action == "replace" else "replaced, perhaps,"
            what += f" ({'; '.join(self.why)}): the stack moves to a new, empty one"
        return (
            f"{self.logical_id} ({self.type}) would be {what}; the old one {fate} "
            f"({policy} {self.deletion_policy})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "logical_id": self.logical_id,
            "type": self.type,
            "action": self.action,
            "why": list(self.why),
            "stateful": self.stateful,
            "policy": self.deletion_policy,
        }


@dataclass(frozen=True)
class Verdict:
    changes: tuple[Change, ...]
    refused: tuple[Change, ...]
    """Stateful resources replaced, deleted or maybe replaced that `--allow-replacement` does
    not name."""
    allowed: tuple[Change, ...]
    unknown_allowances: tuple[str, ...]
    """`--allow-replacement` ids that name no replaced or deleted stateful resource."""

    @property
    def passed(self) -> bool:
        return not self.refused

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "changes": [change.to_json() for change in self.changes],
            "refused": [change.logical_id for change in self.refused],
            "allowed": [change.logical_id for change in self.allowed],
            "unknown_allowances": list(self.unknown_allowances),
        }


@cache
def create_only_paths(resource_type: str, region: str) -> tuple[str, ...] | None:
    """The JSON pointers (`/properties/...`) of `resource_type` whose change replaces it, from
    cfn-lint's bundled provider schema for `region`; None when no schema knows the type."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER, ResourceNotFoundError

    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    except ResourceNotFoundError:
        return None
    except KeyError:
        raise ValueError(f"cfn-lint has no resource schemas for region {region!r}") from None
    paths = list(schema.get("createOnlyProperties", []))
    paths += [p for p in DOCUMENTED_REPLACEMENTS.get(resource_type, ()) if p not in paths]
    return tuple(paths)


def create_only_changes(
    resource_type: str,
    old_properties: Mapping[str, Any],
    new_properties: Mapping[str, Any],
    region: str = "us-east-1",
) -> tuple[str, ...]:
    """The create-only properties (dotted paths) whose resolved values differ between two
    deployments of one resource: a change to any of them replaces it. The local cloud's stack
    update uses this with properties resolved on both sides."""
    changed = []
    for path in create_only_paths(resource_type, region) or ():
        parts = path.removeprefix("/properties/").split("/")
        outcome = _compare(
            _project(old_properties, parts), _project(new_properties, parts), set(), set()
        )
        if outcome is not None:
            changed.append(".".join(parts))
    return tuple(changed)


def compare_templates(
    old: Mapping[str, Any], new: Mapping[str, Any], region: str = "us-east-1"
) -> list[Change]:
    """Every resource of `old` that moving to `new` would replace, delete or may replace,
    ordered by logical id. Resources only in `new` are creations and not listed."""
    old_resources: dict[str, Any] = dict(old.get("Resources") or {})
    new_resources: dict[str, Any] = dict(new.get("Resources") or {})
    created = set(new_resources) - set(old_resources)
    deleted: tuple[Action, tuple[str, ...]] = ("delete", ("removed from the template",))
    actions = dict.fromkeys(set(old_resources) - set(new_resources), deleted)
    kept = sorted(set(old_resources) & set(new_resources))
    # A replacement can cascade (a create-only property referring to a replaced resource):
    # repeat until nothing more changes.
    changed = True
    while changed:
        changed = False
        replaced = created | {i for i, (action, _) in actions.items() if action == "replace"}
        maybe = {i for i, (action, _) in actions.items() if action == "may replace"}
        for logical_id in kept:
            found = _resource_action(
                old_resources[logical_id], new_resources[logical_id], region, replaced, maybe
            )
            if found is not None and actions.get(logical_id) != found:
                actions[logical_id] = found
                changed = True
    return [
        Change(
            logical_id=logical_id,
            type=str(old_resources[logical_id].get("Type", "")),
            action=action,
            why=why,
            stateful=old_resources[logical_id].get("Type") in STATEFUL_RESOURCE_TYPES,
            deletion_policy=str(
                old_resources[logical_id].get(
                    "DeletionPolicy" if action == "delete" else "UpdateReplacePolicy", "Delete"
                )
            ),
        )
        for logical_id, (action, why) in sorted(actions.items())
    ]


def judge(changes: Iterable[Change], allowed: Iterable[str] = ()) -> Verdict:
    """Refuse every stateful resource replaced or deleted unless `allowed` names it."""
    changes = tuple(changes)
    allowed = tuple(dict.fromkeys(allowed))
    losing = [change for change in changes if change.loses_data]
    return Verdict(
        changes=changes,
        refused=tuple(c for c in losing if c.logical_id not in allowed),
        allowed=tuple(c for c in losing if c.logical_id in allowed),
        unknown_allowances=tuple(
            name for name in allowed if name not in {c.logical_id for c in losing}
        ),
    )


def _resource_action(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    region: str,
    replaced: set[str],
    maybe: set[str],
) -> tuple[Action, tuple[str, ...]] | None:
    old_type, new_type = old.get("Type"), new.get("Type")
    if old_type != new_type:
        return "replace", (f"Type {old_type} -> {new_type}",)
    old_properties = old.get("Properties") or {}
    new_properties = new.get("Properties") or {}
    paths = create_only_paths(str(new_type), region)
    replacing: list[str] = []
    unsure: list[str] = []
    for path in paths or ():
        parts = path.removeprefix("/properties/").split("/")
        outcome = _compare(
            _project(old_properties, parts), _project(new_properties, parts), replaced, maybe
        )
        if outcome == "changed":
            replacing.append(".".join(parts))
        elif outcome == "unknown":
            unsure.append(".".join(parts) + " (an intrinsic value not resolved here)")
    if replacing:
        return "replace", tuple(replacing)
    if paths is None or _CUSTOM.match(str(new_type)):
        outcome = _compare(old_properties, new_properties, replaced, maybe)
        if outcome is not None:
            decides = "no resource schema" if paths is None else "a custom resource"
            unsure.append(f"properties changed; {decides}: its provider decides")
    if unsure:
        return "may replace", tuple(unsure)
    return None


def _project(value: Any, parts: list[str]) -> Any:
    """The value at `parts` of a property tree (`*` maps over a list); an intrinsic function
    on the way is returned whole (opaque); `_MISSING` when absent."""
    if not parts:
        return value
    if _is_intrinsic(value):
        return value
    head, rest = parts[0], parts[1:]
    if head == "*" and isinstance(value, list):
        return [_project(item, rest) for item in value]
    if isinstance(value, dict) and head in value:
        return _project(value[head], rest)
    return _MISSING


def _compare(old: Any, new: Any, replaced: set[str], maybe: set[str]) -> str | None:
    """None when the value resolves the same, `changed` when it surely differs, `unknown`
    when an intrinsic difference cannot be resolved here."""
    if old == new:
        referred = _references(new)
        if referred & replaced:
            return "changed"
        return "unknown" if referred & maybe else None
    if not _has_intrinsic(old) and not _has_intrinsic(new):
        return "changed"
    if isinstance(old, dict) and isinstance(new, dict) and not _is_intrinsic(old):
        if _is_intrinsic(new) or set(old) != set(new):
            return _intrinsic_difference(new, replaced)
        outcomes = {_compare(old[key], new[key], replaced, maybe) for key in old}
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        outcomes = {_compare(a, b, replaced, maybe) for a, b in zip(old, new, strict=True)}
    else:
        return _intrinsic_difference(new, replaced)
    if "changed" in outcomes:
        return "changed"
    return "unknown" if "unknown" in outcomes else None


def _intrinsic_difference(new: Any, replaced: set[str]) -> str:
    # A value now built from a new or replaced resource resolves to a new value; any other
    # textual difference involving an intrinsic function may or may not resolve the same.
    return "changed" if _references(new) & replaced else "unknown"


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    (key,) = value
    return key in ("Ref", "Condition") or str(key).startswith("Fn::")


def _has_intrinsic(value: Any) -> bool:
    if _is_intrinsic(value):
        return True
    if isinstance(value, dict):
        return any(_has_intrinsic(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_intrinsic(item) for item in value)
    return False


def _references(value: Any) -> set[str]:
    return set(references(value))
