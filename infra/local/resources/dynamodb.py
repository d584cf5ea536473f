"""DynamoDB tables (`AWS::DynamoDB::Table`, and CDK TableV2's `AWS::DynamoDB::GlobalTable`
as one table in the stack's region)."""

from __future__ import annotations

from typing import Any

from infra.local.resources.base import Created, DeployContext, ResourceSpec, names, tags, unapplied

_COMMON = names(
    "TableName KeySchema AttributeDefinitions BillingMode GlobalSecondaryIndexes "
    "LocalSecondaryIndexes StreamSpecification SSESpecification "
    "TimeToLiveSpecification"
)
_TABLE = _COMMON | {
    "ProvisionedThroughput",
    "PointInTimeRecoverySpecification",
    "DeletionProtectionEnabled",
    "Tags",
}
_GLOBAL_TABLE = _COMMON | {"Replicas", "WriteProvisionedThroughputSettings"}


def table(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    return _create(ctx, spec, p, p, unapplied(p, _TABLE))


def global_table(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    replicas = p.get("Replicas") or [{}]
    local = next((r for r in replicas if r.get("Region") == ctx.context.region), replicas[0])
    notes = unapplied(p, _GLOBAL_TABLE)
    others = [r.get("Region") for r in replicas if r is not local]
    if others:
        notes.append(f"replicas in {others} not created: the local cloud has one region")
    return _create(ctx, spec, p, local, notes)


def _create(
    ctx: DeployContext,
    spec: ResourceSpec,
    p: dict[str, Any],
    replica: dict[str, Any],
    notes: list[str],
) -> Created:
    name = p.get("TableName") or ctx.physical_name(spec, max_length=255)
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": p["KeySchema"],
        "AttributeDefinitions": p["AttributeDefinitions"],
        "BillingMode": p.get("BillingMode", "PROVISIONED"),
    }
    if request["BillingMode"] == "PROVISIONED":
        request["ProvisionedThroughput"] = p.get(
            "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        )
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if p.get(key):
            request[key] = [_index(index) for index in p[key]]
    if p.get("StreamSpecification"):
        request["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
    if p.get("SSESpecification"):
        sse = p["SSESpecification"]
        request["SSESpecification"] = {
            "Enabled": bool(sse.get("SSEEnabled")),
            **({"SSEType": sse["SSEType"]} if "SSEType" in sse else {}),
            **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if "KMSMasterKeyId" in sse else {}),
        }
    if "DeletionProtectionEnabled" in replica:
        request["DeletionProtectionEnabled"] = bool(replica["DeletionProtectionEnabled"])
    if tags(replica):
        request["Tags"] = tags(replica)
    dynamodb = ctx.client("dynamodb")
    description = dynamodb.create_table(**request)["TableDescription"]
    ttl = p.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    pitr = replica.get("PointInTimeRecoverySpecification")
    if pitr and pitr.get("PointInTimeRecoveryEnabled"):
        dynamodb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    attributes = {"Arn": description["TableArn"], "TableId": description.get("TableId", "")}
    if description.get("LatestStreamArn"):
        attributes["StreamArn"] = description["LatestStreamArn"]
    return Created(ref=name, attributes=attributes, notes=notes)


def _index(index: dict[str, Any]) -> dict[str, Any]:
    allowed = {"IndexName", "KeySchema", "Projection", "ProvisionedThroughput"}
    return {key: value for key, value in index.items() if key in allowed}
