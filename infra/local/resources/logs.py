"""CloudWatch Logs log groups, streams and subscription filters."""

from __future__ import annotations

from typing import Any

from infra.local.resources.base import (
    Created,
    DeployContext,
    DeployError,
    ResourceSpec,
    tags,
    unapplied,
)

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


def subscription_filter(ctx: DeployContext, spec: ResourceSpec) -> Created:
    """A subscription filter: the log group's events its pattern matches go to the destination
    as the filter's role (`infra.local.log_subscriptions`); a pattern the local cloud does not
    implement is refused."""
    from infra.local.log_subscriptions import UnsupportedFilterPattern, compile_pattern

    p = spec.properties
    name = p.get("FilterName") or ctx.physical_name(spec, max_length=512)
    try:
        compile_pattern(p.get("FilterPattern", ""))
    except UnsupportedFilterPattern as exc:
        raise DeployError(f"{spec.logical_id} ({spec.type}): {exc}") from None
    ctx.client("logs").put_subscription_filter(
        logGroupName=p["LogGroupName"],
        filterName=name,
        filterPattern=p.get("FilterPattern", ""),
        destinationArn=p["DestinationArn"],
        roleArn=p.get("RoleArn", ""),
    )
    return Created(ref=name, notes=unapplied(p, _SUBSCRIPTION))


_SUBSCRIPTION = {"LogGroupName", "FilterName", "FilterPattern", "DestinationArn", "RoleArn"}
