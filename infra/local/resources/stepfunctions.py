"""Step Functions state machines, created with the definition exactly as CDK synthesized it
(intrinsics resolved, `DefinitionSubstitutions` applied)."""

from __future__ import annotations

import json
from typing import Any

from infra.local.resources.base import (
    Created,
    DeployContext,
    DeployError,
    ResourceSpec,
    names,
    tags,
    unapplied,
)

_STATE_MACHINE = names(
    "StateMachineName DefinitionString Definition DefinitionSubstitutions RoleArn "
    "StateMachineType LoggingConfiguration TracingConfiguration Tags"
)


def state_machine(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("StateMachineName") or ctx.physical_name(spec, max_length=80)
    request: dict[str, Any] = {
        "name": name,
        "definition": definition(spec),
        "roleArn": p["RoleArn"],
        "type": p.get("StateMachineType", "STANDARD"),
    }
    if "LoggingConfiguration" in p:
        request["loggingConfiguration"] = _logging(p["LoggingConfiguration"])
    if "TracingConfiguration" in p:
        request["tracingConfiguration"] = {
            "enabled": bool(p["TracingConfiguration"].get("Enabled"))
        }
    if tags(p):
        request["tags"] = [{"key": t["Key"], "value": t["Value"]} for t in tags(p)]
    previous = ctx.previous(spec)
    if previous is not None:
        arn = previous.ref
        update = {key: request[key] for key in request if key not in ("name", "type", "tags")}
        ctx.client("stepfunctions").update_state_machine(stateMachineArn=arn, **update)
    else:
        arn = ctx.client("stepfunctions").create_state_machine(**request)["stateMachineArn"]
    return Created(
        ref=arn,
        attributes={"Arn": arn, "Name": name},
        notes=unapplied(p, _STATE_MACHINE),
    )


def definition(spec: ResourceSpec) -> str:
    p = spec.properties
    if "DefinitionString" in p:
        text = str(p["DefinitionString"])
    elif "Definition" in p:
        text = json.dumps(p["Definition"])
    else:
        raise DeployError(
            f"{spec.logical_id} ({spec.type}): only DefinitionString or Definition is "
            "supported locally (not DefinitionS3Location)"
        )
    for key, value in (p.get("DefinitionSubstitutions") or {}).items():
        text = text.replace("${" + key + "}", str(value))
    return text


def _logging(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "level": config.get("Level", "OFF"),
        "includeExecutionData": bool(config.get("IncludeExecutionData", False)),
    }
    destinations = [
        {"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}
        for d in config.get("Destinations") or []
        if "CloudWatchLogsLogGroup" in d
    ]
    if destinations:
        out["destinations"] = destinations
    return out
