"""EventBridge rules and their targets (deliveries: `infra.local.eventbridge`)."""

from __future__ import annotations

import json
from typing import Any

from infra.local.resources.base import Created, DeployContext, ResourceSpec, names, tags, unapplied

_RULE = names(
    "Name EventPattern ScheduleExpression State Description RoleArn EventBusName Targets Tags"
)


def rule(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("Name") or ctx.physical_name(spec, max_length=64)
    bus = p.get("EventBusName", "default")
    request: dict[str, Any] = {
        "Name": name,
        "EventBusName": bus,
        "State": p.get("State", "ENABLED"),
    }
    if "EventPattern" in p:
        pattern = p["EventPattern"]
        request["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
    for key in ("ScheduleExpression", "Description", "RoleArn"):
        if key in p:
            request[key] = p[key]
    if tags(p):
        request["Tags"] = tags(p)
    events = ctx.client("events")
    if ctx.previous(spec) is not None:
        old = events.list_targets_by_rule(Rule=name, EventBusName=bus)["Targets"]
        if old:
            events.remove_targets(Rule=name, EventBusName=bus, Ids=[target["Id"] for target in old])
    arn = events.put_rule(**request)["RuleArn"]
    if p.get("Targets"):
        events.put_targets(Rule=name, EventBusName=bus, Targets=p["Targets"])
    return Created(ref=name, attributes={"Arn": arn}, notes=unapplied(p, _RULE))
