"""What every resource provisioner receives and returns."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.assembly import StackArtifact
from infra.local.intrinsics import StackContext
from infra.local.lambda_config import FunctionCodeRegistry

log = logging.getLogger("infra.local.deploy")


class DeployError(RuntimeError):
    """A resource cannot be created locally; the message names its logical id and type."""


@dataclass
class Created:
    """A created resource: what `Ref` returns and what `Fn::GetAtt` can read."""

    ref: str
    attributes: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """Properties recorded but not applied locally, and other caveats (logged at deploy)."""

    def attribute(self, name: str) -> Any:
        return self.attributes[name]


@dataclass(frozen=True)
class ResourceSpec:
    logical_id: str
    type: str
    properties: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class DeployContext:
    stack: StackArtifact
    context: StackContext
    client: Callable[[str], Any]
    code_root: Path
    functions: FunctionCodeRegistry
    deferred: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    """Steps run after every resource exists (label, step): e.g. bucket logging, whose target
    bucket's policy CloudFormation may create later than the logged bucket."""
    updating: dict[str, Created] = field(default_factory=dict)
    """In a stack update, the resources updated in place: logical id -> the deployed one
    (`previous`): their provisioner changes it instead of creating one."""
    generations: dict[str, int] = field(default_factory=dict)
    """In a stack update, how many times a resource was replaced: a replacement gets a new
    generated name, as CloudFormation's random suffix would differ."""

    def previous(self, spec: ResourceSpec) -> Created | None:
        """The deployed resource `spec` updates in place, or None when it is being created."""
        return self.updating.get(spec.logical_id)

    def physical_name(
        self, spec: ResourceSpec, max_length: int = 64, lower: bool = False, separator: str = "-"
    ) -> str:
        """A CloudFormation-style generated name, `<stack>-<logicalId>-<SUFFIX>`, stable across
        deploys (the suffix hashes stack and logical id instead of being random)."""
        seed = f"{self.context.stack_name}/{spec.logical_id}"
        if self.generations.get(spec.logical_id):
            seed += f"/{self.generations[spec.logical_id]}"
        digest = hashlib.sha256(seed.encode()).hexdigest()
        suffix = digest[:12].upper()
        head = f"{self.context.stack_name}{separator}{spec.logical_id}"
        head = re.sub(r"[^A-Za-z0-9-_]", "", head)[: max_length - len(suffix) - 1]
        name = f"{head}{separator}{suffix}"
        return name.lower() if lower else name

    def arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return ":".join(
            [
                "arn",
                self.context.partition,
                service,
                self.context.region if region else "",
                self.context.account_id if account else "",
                resource,
            ]
        )


def tags(properties: dict[str, Any]) -> list[dict[str, str]]:
    """CloudFormation `Tags` (a list of Key/Value, or a map for a few types) as a list."""
    raw = properties.get("Tags") or []
    if isinstance(raw, dict):
        return [{"Key": str(key), "Value": str(value)} for key, value in raw.items()]
    return [{"Key": str(tag["Key"]), "Value": str(tag["Value"])} for tag in raw]


def names(text: str) -> frozenset[str]:
    """Property names written as one space-separated string."""
    return frozenset(text.split())


def unapplied(properties: dict[str, Any], applied: AbstractSet[str]) -> list[str]:
    """Notes for properties a provisioner records but does not apply."""
    return [f"property {name} recorded, not applied" for name in sorted(set(properties) - applied)]


def present(properties: dict[str, Any], api_names: dict[str, str]) -> dict[str, Any]:
    """The properties among `api_names` that the template sets, each under the API's
    parameter name (`{"Description": "description"}`), as they are."""
    return {api: properties[name] for name, api in api_names.items() if name in properties}
