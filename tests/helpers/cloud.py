"""AWS resources faked by moto the way the dev stack creates them: the data bucket (versioned)
and the registry table, whose definition is read from the dev stack's template."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from tests.helpers import REPO

BUCKET = "mlops-dev-data"
TABLE = "mlops-dev-registry"
# The committed snapshot of the synthesized dev template (tests/infra/test_template_snapshot.py
# keeps the two equal), read instead of synthesizing the app.
TEMPLATE = REPO / "tests" / "infra" / "snapshots" / "mlops-dev.template.json"
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")


@dataclass
class Cloud:
    s3: Any
    dynamodb: Any
    bucket: str = BUCKET
    table: str = TABLE

    def keys(self, prefix: str = "") -> list[str]:
        response = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in response.get("Contents", []))

    def body(self, key: str, version_id: str | None = None) -> bytes:
        extra = {"VersionId": version_id} if version_id else {}
        return self.s3.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read()

    def items(self, pk_prefix: str = "") -> list[dict[str, Any]]:
        items = self.dynamodb.scan(TableName=self.table)["Items"]
        return [item for item in items if item["pk"]["S"].startswith(pk_prefix)]


def create_data_bucket(s3: Any, bucket: str = BUCKET, versioned: bool = True) -> None:
    """The data bucket as the stack creates it (versioned)."""
    s3.create_bucket(Bucket=bucket)
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


@cache
def registry_table_properties() -> dict[str, Any]:
    """The properties of the dev template's one `AWS::DynamoDB::Table`, the registry table."""
    resources = json.loads(TEMPLATE.read_text(encoding="utf-8"))["Resources"]
    [properties] = [
        resource["Properties"]
        for resource in resources.values()
        if resource["Type"] == "AWS::DynamoDB::Table"
    ]
    return dict(properties)


def create_registry_table(dynamodb: Any, table: str = TABLE) -> None:
    """The registry table as the stack defines it: its key schema, attribute definitions,
    billing mode, secondary indexes, time to live and point-in-time recovery, named `table`."""
    properties = registry_table_properties()
    request: dict[str, Any] = {
        "TableName": table,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in properties:
        request["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if properties.get(kind):
            request[kind] = [
                {key: index[key] for key in _INDEX_KEYS if key in index}
                for index in properties[kind]
            ]
    dynamodb.create_table(**request)
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)
    recovery = properties.get("PointInTimeRecoverySpecification")
    if recovery and recovery.get("PointInTimeRecoveryEnabled"):
        dynamodb.update_continuous_backups(
            TableName=table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
