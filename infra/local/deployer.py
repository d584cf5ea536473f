"""Deploys one synthesized stack into moto: every resource in dependency order, intrinsics
resolved, then the stack outputs. A resource type with no provisioner fails the deploy before
anything is created, unless it is on the ignore list (`infra.local.resources.IGNORED`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.cdk import replacements
from infra.local.assembly import StackArtifact
from infra.local.intrinsics import Deployed, Resolver, StackContext, TemplateError, references
from infra.local.lambda_config import REGISTRY, FunctionCodeRegistry
from infra.local.resources import IGNORED, PROVISIONERS, DeployError
from infra.local.resources.base import Created, DeployContext, ResourceSpec
from infra.local.resources.removal import REMOVERS, UPDATE_RECORDED

log = logging.getLogger("infra.local.deploy")

_FUNCTION = "AWS::Lambda::Function"
TEMPLATE_FILE = "template.json"
"""The deployed template, in the state dir: what `mlops rollback --local` compares with."""
# A resource named in the template cannot be replaced: the new one would need the same name.
_NAME_PROPERTIES = frozenset(
    "BucketName TableName QueueName TopicName FunctionName RoleName StateMachineName "
    "LogGroupName DeliveryStreamName Name AliasName".split()
)


@dataclass
class DeployedResource:
    logical_id: str
    type: str
    status: str
    """created | ignored | skipped"""
    reason: str = ""
    created: Created | None = None
    properties: dict[str, Any] | None = None
    """Its properties as resolved when it was created or last updated."""
    generation: int = 0
    """How many times a stack update replaced it."""
    change: str = "created"
    """What the last deploy or update did: created | kept | updated | replaced | recorded."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "status": self.status}
        if self.created is not None:
            out["physical_id"] = self.created.ref
            out["attributes"] = self.created.attributes
            if self.created.notes:
                out["notes"] = self.created.notes
        if self.reason:
            out["reason"] = self.reason
        if self.created is not None:
            out["change"] = self.change
        return out


@dataclass
class Deployment:
    stack_name: str
    outputs: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, DeployedResource] = field(default_factory=dict)
    seconds: float = 0.0
    template: dict[str, Any] = field(default_factory=dict)
    """The template deployed (what a stack update compares the new one with)."""
    removed: dict[str, str] = field(default_factory=dict)
    """After a stack update: each old resource it deleted or left (`<logical id>` or
    `<logical id> (replaced)`) -> what happened to it."""

    def physical_id(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        if resource.created is None:
            raise KeyError(f"{logical_id} was not created locally ({resource.reason})")
        return resource.created.ref

    def of_type(self, resource_type: str) -> dict[str, str]:
        """Logical id -> physical id of the created resources of one type."""
        return {
            logical_id: resource.created.ref
            for logical_id, resource in self.resources.items()
            if resource.type == resource_type and resource.created is not None
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack_name,
            "outputs": self.outputs,
            "resources": {key: value.to_json() for key, value in self.resources.items()},
        }


class _NotCreated:
    """Stands for an ignored or skipped resource: using it is an error that says why."""

    def __init__(self, logical_id: str, reason: str) -> None:
        self._message = f"{logical_id} is not created locally ({reason})"

    @property
    def ref(self) -> str:
        raise TemplateError(self._message)

    def attribute(self, name: str) -> Any:
        raise TemplateError(self._message)


class Deployer:
    def __init__(
        self,
        stack: StackArtifact,
        client: Callable[[str], Any],
        code_root: Path,
        context: StackContext | None = None,
        parameters: dict[str, Any] | None = None,
        functions: FunctionCodeRegistry = REGISTRY,
    ) -> None:
        self._stack = stack
        self._context = context or StackContext(stack_name=stack.name)
        self._ctx = DeployContext(
            stack=stack,
            context=self._context,
            client=client,
            code_root=code_root,
            functions=functions,
        )
        self._deployed: dict[str, Deployed] = {}
        self._resolver = Resolver(
            stack.template,
            self._context,
            lookup=self._deployed.get,
            parameters=parameters,
            ssm_lookup=self._ssm_parameter,
        )

    def deploy(self) -> Deployment:
        started = time.monotonic()
        resources: dict[str, Any] = self._stack.template.get("Resources", {})
        check_types(resources)
        replaced = replaced_providers(resources)
        deployment = Deployment(stack_name=self._stack.name, template=self._stack.template)
        for logical_id in dependency_order(resources, replaced):
            deployment.resources[logical_id] = self._deploy_one(
                logical_id, resources[logical_id], replaced
            )
        self._run_deferred(deployment)
        deployment.outputs = self._outputs()
        deployment.seconds = time.monotonic() - started
        log.info(
            "deployed %s: %d resources in %.2f s",
            self._stack.name,
            len(deployment.resources),
            deployment.seconds,
        )
        return deployment

    def update(self, previous: Deployment) -> Deployment:
        """Update the deployed stack `previous` to this stack's template, as a CloudFormation
        stack update does: in dependency order, a resource whose type and resolved properties
        are unchanged is kept as it is (with its data); a changed one is updated in place, or
        replaced (a new one under a new generated name) when a create-only property changed
        (`infra.cdk.replacements`); a new one is created. Then, last, the resources no longer
        in the template and the replaced ones are deleted, unless their `DeletionPolicy`
        (`UpdateReplacePolicy` for a replaced one) is Retain or Snapshot."""
        started = time.monotonic()
        resources: dict[str, Any] = self._stack.template.get("Resources", {})
        check_types(resources)
        replaced = replaced_providers(resources)
        deployment = Deployment(stack_name=self._stack.name, template=self._stack.template)
        old_resources: dict[str, Any] = previous.template.get("Resources", {})
        leaving: list[tuple[str, DeployedResource, str]] = []
        for logical_id in dependency_order(resources, replaced):
            resource = resources[logical_id]
            old = previous.resources.get(logical_id)
            if old is None or old.created is None:
                done = self._deploy_one(logical_id, resource, replaced)
            else:
                done = self._update_one(logical_id, resource, old, replaced)
                if done.change == "replaced" or done.created is None:
                    policy = (
                        "UpdateReplacePolicy" if done.change == "replaced" else "DeletionPolicy"
                    )
                    leaving.append((logical_id, old, policy))
            deployment.resources[logical_id] = done
        self._run_deferred(deployment)
        deployment.outputs = self._outputs()
        gone = [
            logical_id
            for logical_id in reversed(dependency_order(old_resources))
            if logical_id not in resources and previous.resources.get(logical_id) is not None
        ]
        leaving += [(i, previous.resources[i], "DeletionPolicy") for i in gone]
        for logical_id, old, policy in leaving:
            label = logical_id if policy == "DeletionPolicy" else f"{logical_id} (replaced)"
            raw = old_resources.get(logical_id, {})
            deployment.removed[label] = self._remove(logical_id, old, str(raw.get(policy, "")))
        deployment.seconds = time.monotonic() - started
        log.info(
            "updated %s: %s in %.2f s",
            self._stack.name,
            ", ".join(
                f"{sum(r.change == c for r in deployment.resources.values())} {c}"
                for c in ("kept", "updated", "replaced", "created")
            ),
            deployment.seconds,
        )
        return deployment

    def _update_one(
        self,
        logical_id: str,
        resource: dict[str, Any],
        old: DeployedResource,
        replaced: dict[str, str],
    ) -> DeployedResource:
        assert old.created is not None
        kind = resource["Type"]
        if self._skip_reason(logical_id, resource, replaced) is not None:
            return self._deploy_one(logical_id, resource, replaced)
        spec = self._spec(logical_id, resource)
        if old.type == kind and old.properties == spec.properties:
            self._deployed[logical_id] = old.created
            self._ctx.generations[logical_id] = old.generation
            return dataclasses.replace(old, change="kept")
        why = (
            replacements.create_only_changes(
                kind, old.properties or {}, spec.properties, self._context.region
            )
            if old.type == kind
            else (f"Type {old.type} -> {kind}",)
        )
        if why:
            named = [path for path in why if path in _NAME_PROPERTIES]
            if named or any(name in spec.properties for name in _NAME_PROPERTIES):
                raise DeployError(
                    f"{logical_id} ({kind}): CloudFormation cannot update a stack when a "
                    f"custom-named resource requires replacing ({', '.join(why)}); rename it"
                )
            log.info("replacing %s (%s): %s", logical_id, kind, ", ".join(why))
            self._ctx.generations[logical_id] = old.generation + 1
            return self._done(spec, self._provision(spec), "replaced")
        self._ctx.generations[logical_id] = old.generation
        if kind in UPDATE_RECORDED:
            changed = sorted(
                key
                for key in {*(old.properties or {}), *spec.properties}
                if (old.properties or {}).get(key) != spec.properties.get(key)
            )
            note = (
                f"update of {', '.join(changed)} recorded, not applied locally: "
                f"{UPDATE_RECORDED[kind]}"
            )
            log.info("%s: %s", logical_id, note)
            kept = dataclasses.replace(old.created, notes=[*old.created.notes, note])
            self._deployed[logical_id] = kept
            return self._done(spec, kept, "recorded")
        self._ctx.updating[logical_id] = old.created
        try:
            done = self._provision(spec)
        finally:
            del self._ctx.updating[logical_id]
        return self._done(spec, done, "updated")

    def _done(self, spec: ResourceSpec, created: Created, change: str) -> DeployedResource:
        return DeployedResource(
            spec.logical_id,
            spec.type,
            "created",
            created=created,
            properties=spec.properties,
            generation=self._ctx.generations.get(spec.logical_id, 0),
            change=change,
        )

    def _remove(self, logical_id: str, old: DeployedResource, policy: str) -> str:
        """Delete an old resource unless `policy` retains it; what happened, in words."""
        assert old.created is not None
        if policy in ("Retain", "RetainExceptOnCreate", "Snapshot"):
            log.info("retained %s (%s): %s", logical_id, old.type, old.created.ref)
            return f"retained ({policy}): {old.created.ref}"
        remover = REMOVERS.get(old.type)
        if remover is None:
            return f"left in moto: the local cloud cannot delete a {old.type}"
        try:
            remover(self._ctx, old.created, old.properties or {})
        except Exception as exc:
            raise DeployError(f"{logical_id} ({old.type}): cannot delete: {exc}") from exc
        log.info("deleted %s (%s): %s", logical_id, old.type, old.created.ref)
        return f"deleted: {old.created.ref}"

    def _spec(self, logical_id: str, resource: dict[str, Any]) -> ResourceSpec:
        kind = resource["Type"]
        properties = dict(resource.get("Properties") or {})
        if kind.startswith("Custom::"):
            # The provider function is not created: the deployer does its work itself.
            properties.pop("ServiceToken", None)
        try:
            return ResourceSpec(
                logical_id=logical_id,
                type=kind,
                properties=self._resolver.resolve(properties, f"{logical_id}.Properties"),
                metadata=dict(resource.get("Metadata") or {}),
            )
        except DeployError:
            raise
        except Exception as exc:
            raise DeployError(f"{logical_id} ({kind}): {exc}") from exc

    def _provision(self, spec: ResourceSpec) -> Created:
        try:
            created = PROVISIONERS[spec.type](self._ctx, spec)
        except DeployError:
            raise
        except Exception as exc:
            raise DeployError(f"{spec.logical_id} ({spec.type}): {exc}") from exc
        for note in created.notes:
            log.info("  %s: %s", spec.logical_id, note)
        self._deployed[spec.logical_id] = created
        return created

    def _deploy_one(
        self, logical_id: str, resource: dict[str, Any], replaced: dict[str, str]
    ) -> DeployedResource:
        kind = resource["Type"]
        reason = self._skip_reason(logical_id, resource, replaced)
        if reason is not None:
            status = "ignored" if kind in IGNORED else "skipped"
            log.info("%s %s (%s): %s", status, logical_id, kind, reason)
            self._deployed[logical_id] = _NotCreated(logical_id, reason)
            return DeployedResource(logical_id, kind, status, reason)
        spec = self._spec(logical_id, resource)
        created = self._provision(spec)
        log.info("created %s (%s): %s", logical_id, kind, created.ref)
        return self._done(spec, created, "created")

    def _skip_reason(
        self, logical_id: str, resource: dict[str, Any], replaced: dict[str, str]
    ) -> str | None:
        kind = resource["Type"]
        if kind in IGNORED:
            return IGNORED[kind]
        if logical_id in replaced:
            return replaced[logical_id]
        condition = resource.get("Condition")
        if condition and not self._resolver.condition(condition, f"{logical_id}.Condition"):
            return f"condition {condition} is false"
        return None

    def _run_deferred(self, deployment: Deployment) -> None:
        for label, step in self._ctx.deferred:
            try:
                step()
            except Exception as exc:
                log.warning("%s not applied: %s", label, exc)
                logical_id = label.split(" ", 1)[0]
                created = deployment.resources[logical_id].created
                if created is not None:
                    created.notes.append(f"{label} not applied: {exc}")

    def _outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        for name, output in (self._stack.template.get("Outputs") or {}).items():
            condition = output.get("Condition")
            if condition and not self._resolver.condition(condition, f"Outputs.{name}"):
                continue
            outputs[name] = self._resolver.resolve(output["Value"], f"Outputs.{name}")
        return outputs

    def _ssm_parameter(self, name: str) -> str:
        return str(self._ctx.client("ssm").get_parameter(Name=name)["Parameter"]["Value"])


def check_types(resources: dict[str, Any]) -> None:
    """Fail before creating anything if a resource type is neither emulated nor ignored."""
    unknown = [
        f"{logical_id} ({resource.get('Type')})"
        for logical_id, resource in resources.items()
        if resource.get("Type") not in PROVISIONERS and resource.get("Type") not in IGNORED
    ]
    if unknown:
        raise DeployError(
            "resource types the local cloud does not emulate: "
            + ", ".join(unknown)
            + " (add a provisioner in infra/local/resources, or an ignore reason)"
        )


def replaced_providers(resources: dict[str, Any]) -> dict[str, str]:
    """Lambda functions that only back custom resources the deployer applies (or ignores)
    itself, e.g. CDK's BucketNotificationsHandler: logical id -> why it is skipped."""
    replaced: dict[str, str] = {}
    for logical_id, resource in resources.items():
        kind = resource.get("Type", "")
        if not kind.startswith("Custom::") or (kind not in PROVISIONERS and kind not in IGNORED):
            continue
        token = (resource.get("Properties") or {}).get("ServiceToken")
        for name in references(token):
            if resources.get(name, {}).get("Type") == _FUNCTION:
                replaced[name] = f"provider of {kind} ({logical_id}), applied by the local cloud"
    return replaced


def _dependencies(logical_id: str, resource: dict[str, Any], known: Iterable[str]) -> set[str]:
    properties = dict(resource.get("Properties") or {})
    if str(resource.get("Type", "")).startswith("Custom::"):
        properties.pop("ServiceToken", None)
    depends_on = resource.get("DependsOn") or []
    if isinstance(depends_on, str):
        depends_on = [depends_on]
    names = set(references(properties)) | set(depends_on)
    return {name for name in names if name in known and name != logical_id}


def dependency_order(resources: dict[str, Any], skipped: Iterable[str] = ()) -> list[str]:
    """Logical ids so that each comes after what it references or depends on (template order
    among independent ones). A reference cycle fails, naming the resources in it."""
    known = set(resources)
    skipped = set(skipped)
    waiting = {
        logical_id: _dependencies(logical_id, resource, known) - skipped
        for logical_id, resource in resources.items()
    }
    order: list[str] = []
    while waiting:
        ready = [logical_id for logical_id, deps in waiting.items() if not deps]
        if not ready:
            raise DeployError(f"dependency cycle among: {', '.join(sorted(waiting))}")
        for logical_id in ready:
            order.append(logical_id)
            del waiting[logical_id]
        for deps in waiting.values():
            deps.difference_update(ready)
    return order


def write_state(deployment: Deployment, state_dir: Path, endpoint: str | None) -> Path:
    """`outputs.json` (the stack outputs, by name), `stack.json` (every resource) and
    `template.json` (the template deployed) in `state_dir`; returns the outputs file. Each
    file appears complete or not at all, since other processes poll for it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    details = {"endpoint": endpoint, **deployment.to_json()}
    write_atomically(state_dir / "stack.json", json.dumps(details, indent=2, default=str))
    write_atomically(state_dir / TEMPLATE_FILE, json.dumps(deployment.template))
    outputs_file = state_dir / "outputs.json"
    write_atomically(outputs_file, json.dumps(deployment.outputs, indent=2))
    return outputs_file


def write_atomically(path: Path, text: str) -> None:
    staging = path.with_suffix(path.suffix + ".tmp")
    staging.write_text(text + "\n", encoding="utf-8")
    staging.replace(path)
