"""The ingest stage on the local cloud: a good drop becomes a dataset version; a bad one
fails the execution, lands in quarantine with its reason, and alerts through SNS."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from functions.common.layout import reason_key
from functions.ml.sample_data import BAD_FILE_REASONS, bad_files, good_files
from infra.local import LocalCloud

GOOD = good_files(rows=300)
BAD = bad_files()


def _alerts_for(cloud: LocalCloud, execution_arn: str) -> list[dict[str, Any]]:
    """Failure alerts of one execution (a gate rejection is a notice, not a failure)."""
    messages = [json.loads(n["Message"]) for n in cloud.sent_notifications()]
    return [m for m in messages if m.get("execution") == execution_arn and "error" in m]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_good_drop_succeeds_and_becomes_a_dataset_version(
    local_cloud: LocalCloud, drop: Callable[[str, bytes], str], name: str
) -> None:
    execution = local_cloud.wait_for_execution(drop(f"raw/churn/{name}", GOOD[name]))
    assert execution["status"] == "SUCCEEDED", execution.get("cause")

    dataset = json.loads(execution["output"])["dataset"]
    assert dataset["source"]["key"] == f"raw/churn/{name}"
    assert dataset["rows"] > 0
    registry = local_cloud.client("dynamodb").get_item(
        TableName=local_cloud.outputs["RegistryTableName"],
        Key={"pk": {"S": "DATASET#churn"}, "sk": {"S": f"VERSION#{dataset['data_version']}"}},
    )
    assert "Item" in registry
    bucket = local_cloud.outputs["DataBucketName"]
    assert local_cloud.client("s3").head_object(Bucket=bucket, Key=dataset["manifest_key"])
    assert _alerts_for(local_cloud, execution["executionArn"]) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD_FILE_REASONS))
def test_a_bad_drop_fails_is_quarantined_and_alerts(
    local_cloud: LocalCloud, drop: Callable[[str, bytes], str], name: str
) -> None:
    key = f"raw/churn/{name}"
    execution = local_cloud.wait_for_execution(drop(key, BAD[name]))
    assert execution["status"] == "FAILED"
    assert execution["error"] == "DataValidationError"

    s3, bucket = local_cloud.client("s3"), local_cloud.outputs["DataBucketName"]
    reason = json.loads(s3.get_object(Bucket=bucket, Key=reason_key(key))["Body"].read())
    assert reason["code"] == BAD_FILE_REASONS[name]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == BAD[name]  # raw untouched
    [alert] = _alerts_for(local_cloud, execution["executionArn"])
    assert alert["error"] == "DataValidationError"
    assert alert["input"]["detail"]["object"]["key"] == key


@pytest.mark.slow
def test_a_drop_for_another_dataset_is_quarantined_as_unknown(
    local_cloud: LocalCloud, drop: Callable[[str, bytes], str]
) -> None:
    name, body = next(iter(GOOD.items()))
    execution = local_cloud.wait_for_execution(drop(f"raw/sales/{name}", body))
    assert execution["status"] == "FAILED"
    assert execution["error"] == "UnknownDatasetError"
    s3, bucket = local_cloud.client("s3"), local_cloud.outputs["DataBucketName"]
    reason = s3.get_object(Bucket=bucket, Key=reason_key(f"raw/sales/{name}"))
    assert json.loads(reason["Body"].read())["code"] == "unknown_dataset"
    [alert] = _alerts_for(local_cloud, execution["executionArn"])
    assert alert["error"] == "UnknownDatasetError"
