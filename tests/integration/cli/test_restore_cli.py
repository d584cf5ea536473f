"""`mlops restore --registry` against a moto server reached as the local cloud: the registry
table restored from point-in-time recovery into a new table that holds its items and its
settings, a time outside the restorable window refused with the window named, and the table in
use left alone. Moto restores the items as they are when asked (whatever the time), so these
tests cover the drill up to the switch, not the choice of the point in time."""

from __future__ import annotations

import datetime
import json
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from functions.adapters.registry.model_registry import ModelRegistry
from infra.cli import point_in_time
from infra.cli.main import app
from tests.helpers.cloud import create_registry_table, registry_table_properties

REGION = "us-east-1"
TABLE = "mlops-dev-RegistryTable1A2B3C-XYZ"
MODEL = "churn"


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def registry(local_state: Any) -> Any:
    """The registry table as the stack creates it (recovery on), with two model versions."""
    dynamodb = boto3.client("dynamodb", endpoint_url=local_state.endpoint, region_name=REGION)
    create_registry_table(dynamodb, TABLE)
    arn = dynamodb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    dynamodb.tag_resource(
        ResourceArn=arn,
        Tags=[{"Key": "project", "Value": "mlops"}, {"Key": "stage", "Value": "dev"}],
    )
    models = ModelRegistry(TABLE, dynamodb)
    models.allocate_version(MODEL)
    models.allocate_version(MODEL)
    local_state.write_outputs({"RegistryTableName": TABLE, "DataBucketName": "mlops-dev-data"})
    return dynamodb


def _items(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items = dynamodb.scan(TableName=table)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def test_restore_makes_a_new_table_with_the_items_and_settings(registry: Any) -> None:
    before = _items(registry, TABLE)

    result = mlops("restore", "--registry", "--to", "latest", "--json")

    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    restored = done["target"]
    assert restored.startswith(f"{TABLE}-restored-")
    assert done["config_line"] == f'registry_table = "{restored}"'
    assert _items(registry, restored) == before
    assert done["source_items"] == done["restored_items"] == len(before)
    recovery = registry.describe_continuous_backups(TableName=restored)
    assert (
        recovery["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
            "PointInTimeRecoveryStatus"
        ]
        == "ENABLED"
    )
    ttl = registry.describe_time_to_live(TableName=restored)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiration")
    arn = registry.describe_table(TableName=restored)["Table"]["TableArn"]
    tags = registry.list_tags_of_resource(ResourceArn=arn)["Tags"]
    assert {tag["Key"]: tag["Value"] for tag in tags} == {"project": "mlops", "stage": "dev"}
    assert _items(registry, TABLE) == before


def test_restore_prints_the_switch(registry: Any) -> None:
    result = mlops("restore", "--registry", "--to", "latest")

    assert result.exit_code == 0, result.output
    [restored] = [name for name in registry.list_tables()["TableNames"] if name != TABLE]
    assert "under [stages.dev]" in result.stdout
    assert f'registry_table = "{restored}"' in result.stdout


def _run(number: int) -> dict[str, Any]:
    return {
        "run_id": f"2026010{number}T101500Z-4f9a2c",
        "model_name": MODEL,
        "status": "evaluated",
        "estimator": "hist_gradient_boosting",
        "started_at": f"2026-01-0{number}T10:15:00.000Z",
        "data_version": f"2026010{number}T101400Z-dddddddd",
        "metrics": {"roc_auc": 0.8},
    }


def test_after_the_switch_what_was_written_since_the_restore_is_gone(
    registry: Any, local_state: Any
) -> None:
    models = ModelRegistry(TABLE, registry)
    models.put_run(_run(1))
    assert mlops("restore", "--registry", "--to", "latest").exit_code == 0
    [restored] = [name for name in registry.list_tables()["TableNames"] if name != TABLE]
    models.put_run(_run(2))  # after the restore point (moto restores what is there when asked)

    local_state.write_outputs({"RegistryTableName": restored, "DataBucketName": "mlops-dev-data"})
    result = mlops("runs", "list", "--json")

    assert result.exit_code == 0, result.output
    assert [run["run_id"] for run in json.loads(result.stdout)] == [_run(1)["run_id"]]


def test_a_time_outside_the_window_is_refused_naming_the_window(registry: Any) -> None:
    window = point_in_time.restorable_window(registry, TABLE)
    before = window.earliest - datetime.timedelta(days=1)

    result = mlops("restore", "--registry", "--to", before.isoformat())

    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "outside the restorable window" in message
    assert window.describe() in message
    assert registry.list_tables()["TableNames"] == [TABLE]


def test_dry_run_checks_and_names_the_table_but_restores_nothing(registry: Any) -> None:
    result = mlops("restore", "--registry", "--to", "latest", "--dry-run", "--json")

    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True
    assert plan["target"].startswith(f"{TABLE}-restored-")
    assert registry.list_tables()["TableNames"] == [TABLE]


def test_a_table_without_recovery_is_refused(registry: Any) -> None:
    registry.update_continuous_backups(
        TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False}
    )

    result = mlops("restore", "--registry", "--to", "latest")

    assert result.exit_code == 1
    assert "point-in-time recovery is not enabled" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (["--to", "latest"], "--registry"),
        (["--registry", "--to", "yesterday"], "not an ISO 8601 time"),
        (["--registry", "--to", "2026-12-01T10:00:00"], "has no UTC offset"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(
    registry: Any, arguments: list[str], problem: str
) -> None:
    result = mlops("restore", *arguments)

    assert result.exit_code == 2
    assert problem in result.stderr
    assert "Traceback" not in result.output


def _encrypted_table(dynamodb: Any, name: str, sse: dict[str, Any]) -> None:
    properties = registry_table_properties()
    dynamodb.create_table(
        TableName=name,
        KeySchema=properties["KeySchema"],
        AttributeDefinitions=properties["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
        SSESpecification=sse,
    )


def test_the_restored_table_is_encrypted_like_the_source(registry: Any) -> None:
    kms = boto3.client("kms", endpoint_url=registry.meta.endpoint_url, region_name=REGION)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    _encrypted_table(
        registry, "customer-key", {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key}
    )

    assert point_in_time.encryption(registry, kms, "customer-key") == {
        "Enabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": key,
    }
    assert point_in_time.encryption(registry, kms, TABLE) == {"Enabled": False}


def test_a_table_restored_before_is_named_after_its_origin() -> None:
    now = datetime.datetime(2026, 12, 2, 6, 30, tzinfo=datetime.UTC)

    name = point_in_time.restored_name(f"{TABLE}-restored-20261101T000000Z", now)

    assert name == f"{TABLE}-restored-20261202T063000Z"
