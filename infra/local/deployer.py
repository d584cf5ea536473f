"""Deploys one synthesized stack into moto: every resource in dependency order, intrinsics
resolved, then the stack outputs. A resource type with no provisioner fails the deploy before
anything is created, unless it is on the ignore list (`infra.local.resources.IGNORED`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.assembly import StackArtifact
from infra.local.intrinsics import Deployed, Resolver, StackContext, TemplateError, references
from infra.local.lambda_config import REGISTRY, FunctionCodeRegistry
from infra.local.resources import IGNORED, PROVISIONERS, DeployError
from infra.local.resources.base import Created, DeployContext, ResourceSpec

log = logging.getLogger("infra.local.deploy")

_FUNCTION = "AWS::Lambda::Function"


@dataclass
class DeployedResource:
    logical_id: str
    type: str
    status: str
    """created | ignored | skipped"""
    reason: str = ""
    created: Created | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "status": self.status}
        if self.created is not None:
            out["physical_id"] = self.created.ref
            out["attributes"] = self.created.attributes
            if self.created.notes:
                out["notes"] = self.created.notes
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class Deployment:
    stack_name: str
    outputs: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, DeployedResource] = field(default_factory=dict)
    seconds: float = 0.0

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
        deployment = Deployment(stack_name=self._stack.name)
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
        properties = dict(resource.get("Properties") or {})
        if kind.startswith("Custom::"):
            # The provider function is not created: the deployer does its work itself.
            properties.pop("ServiceToken", None)
        try:
            spec = ResourceSpec(
                logical_id=logical_id,
                type=kind,
                properties=self._resolver.resolve(properties, f"{logical_id}.Properties"),
                metadata=dict(resource.get("Metadata") or {}),
            )
            created = PROVISIONERS[kind](self._ctx, spec)
        except DeployError:
            raise
        except Exception as exc:
            raise DeployError(f"{logical_id} ({kind}): {exc}") from exc
        log.info("created %s (%s): %s", logical_id, kind, created.ref)
        for note in created.notes:
            log.info("  %s: %s", logical_id, note)
        self._deployed[logical_id] = created
        return DeployedResource(logical_id, kind, "created", created=created)

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
    """`outputs.json` (the stack outputs, by name) and `stack.json` (every resource) in
    `state_dir`; returns the outputs file. Each file appears complete or not at all, since
    other processes poll for it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    details = {"endpoint": endpoint, **deployment.to_json()}
    _write_atomically(state_dir / "stack.json", json.dumps(details, indent=2, default=str))
    outputs_file = state_dir / "outputs.json"
    _write_atomically(outputs_file, json.dumps(deployment.outputs, indent=2))
    return outputs_file


def _write_atomically(path: Path, text: str) -> None:
    staging = path.with_suffix(path.suffix + ".tmp")
    staging.write_text(text + "\n", encoding="utf-8")
    staging.replace(path)
