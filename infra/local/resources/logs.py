"""CloudWatch Logs log groups and streams."""

from __future__ import annotations

from typing import Any

from infra.local.resources.base import Created, DeployContext, ResourceSpec, tags, unapplied

_LOG_GROUP = {"LogGroupName", "RetentionInDays", "KmsKeyId", "Tags"}


def log_group(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("LogGroupName") or ctx.physical_name(spec, max_length=512)
    request: dict[str, Any] = {"logGroupName": name}
    if "KmsKeyId" in p:
        request["kmsKeyId"] = p["KmsKeyId"]
    if tags(p):
        request["tags"] = {tag["Key"]: tag["Value"] for tag in tags(p)}
    logs = ctx.client("logs")
    if ctx.previous(spec) is None:
        logs.create_log_group(**request)
    if "RetentionInDays" in p:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
    elif ctx.previous(spec) is not None:
        logs.delete_retention_policy(logGroupName=name)
    return Created(
        ref=name,
        attributes={"Arn": ctx.arn("logs", f"log-group:{name}:*")},
        notes=unapplied(p, _LOG_GROUP),
    )


def log_stream(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("LogStreamName") or ctx.physical_name(spec, max_length=512)
    ctx.client("logs").create_log_stream(logGroupName=p["LogGroupName"], logStreamName=name)
    return Created(ref=name)
