"""`[train] backend = "sagemaker"` on the local cloud: a drop runs Prepare -> the training job
(substituted by the local cloud, which runs the image's entry point in-process in a SageMaker
layout) -> Collect -> Evaluate -> Register, and the promoted model is the one the Lambda
backend's code trains from the same file; a training job whose entry point fails ends in
Notify -> Failed with production untouched."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.config.loading import load_config
from functions.common.contracts import model_outcome
from functions.ml import sample_data
from functions.ml.onnx_model import OnnxModel, Signature
from infra.local import LocalCloud
from tests.helpers.openlineage import stored_events

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = (
    (REPO_ROOT / "mlops.toml")
    .read_text()
    .replace("[ingest]", '[train]\nbackend = "sagemaker"\n\n[ingest]', 1)
)
DROP = sample_data.encode(sample_data.churn_frame(1_500, seed=3))


@pytest.fixture(scope="module")
def cloud(synth_with_config: Callable[[str], Path]) -> Iterator[LocalCloud]:
    with LocalCloud.start(synth_with_config(CONFIG), mode="server", port=0) as started:
        yield started


@pytest.fixture(scope="module")
def promoted(cloud: LocalCloud) -> dict[str, Any]:
    """The first drop's execution, run while the local cloud's log is captured."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("infra.local.sagemaker")
    logger.addHandler(handler)
    try:
        described = cloud.drop("raw/churn/first.csv", DROP, timeout=300)
    finally:
        logger.removeHandler(handler)
    return {"execution": described, "log": [record.getMessage() for record in records]}


def _entered(cloud: LocalCloud, execution_arn: str) -> list[str]:
    history = cloud.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000
    )["events"]
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in history
        if "stateEnteredEventDetails" in event
    ]


def test_a_drop_is_trained_by_the_substituted_job_and_promoted(
    cloud: LocalCloud, promoted: dict[str, Any]
) -> None:
    execution = promoted["execution"]
    assert execution["status"] == "SUCCEEDED", execution
    output = model_outcome(json.loads(execution["output"]))
    assert output["status"] == "promoted"
    job = output["training_job"]
    assert job["job_name"] == f"mlops-dev-{job['run_id']}"
    assert job["result"]["status"] == "Completed"
    assert output["training"]["run_id"] == job["run_id"]
    entered = _entered(cloud, execution["executionArn"])
    assert entered.index("Prepare training job") < entered.index("Train")
    assert entered.index("Train") < entered.index("Collect training run")
    assert entered.index("Collect training run") < entered.index("Evaluate")
    assert promoted["log"] == [
        f"local cloud: SageMaker training job {job['job_name']} run in-process (substituted)"
    ]


def test_the_run_lands_where_the_lambda_backend_puts_it(
    cloud: LocalCloud, promoted: dict[str, Any]
) -> None:
    output = model_outcome(json.loads(promoted["execution"]["output"]))
    job, training = output["training_job"], output["training"]
    bucket, s3 = cloud.outputs["DataBucketName"], cloud.client("s3")
    assert job["result"]["model_artifacts"] == (
        f"s3://{bucket}/models/churn/sagemaker/{job['job_name']}/output/model.tar.gz"
    )
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=training["run_prefix"])["Contents"]
    assert {item["Key"].rsplit("/", 1)[1] for item in listed} >= {
        "model.onnx",
        "signature.json",
        "holdout.parquet",
        "reference_profile.json",
        "run.json",
    }
    registry = ModelRegistry(cloud.outputs["RegistryTableName"], cloud.client("dynamodb"))
    run = registry.get_run("churn", training["run_id"])
    assert run is not None
    assert run["training_job"]["name"] == job["job_name"]
    assert run["training_job"]["backend"] == "sagemaker"
    assert run["execution"] == output["execution"]["id"]
    alias = registry.get_alias("churn")
    assert alias is not None and alias.version == 1
    version = registry.get_version("churn", 1)
    assert version is not None and version.run_id == training["run_id"]
    # The collect step emits the training's OpenLineage run, as the train function does.
    trained = [
        e
        for e in stored_events(s3, bucket, "churn.train")
        if training["run_prefix"] in {d["name"] for d in e["outputs"]}
    ]
    assert [e["eventType"] for e in trained] == ["COMPLETE"]
    assert job["job_name"] in trained[0]["job"]["facets"]["documentation"]["description"]


def test_the_promoted_model_predicts_as_the_lambda_backend_code_trains_it(
    cloud: LocalCloud, promoted: dict[str, Any], tmp_path: Path
) -> None:
    training = model_outcome(json.loads(promoted["execution"]["output"]))["training"]
    bucket, s3 = cloud.outputs["DataBucketName"], cloud.client("s3")
    signature = json.loads(
        s3.get_object(Bucket=bucket, Key=training["signature_key"])["Body"].read()
    )
    onnx = s3.get_object(Bucket=bucket, Key=training["onnx_key"])["Body"].read()
    served = OnnxModel(onnx, Signature.from_dict(signature))

    # Imported here, not at collection: its import creates the functions' Powertools logger
    # and metrics, which must first be created inside a function, with its environment.
    from infra.cli.train_local import train_local

    data = tmp_path / "first.csv"
    data.write_bytes(DROP)
    config = load_config(REPO_ROOT / "mlops.toml").for_stage("dev")
    local = train_local(data, tmp_path / "out", config=config)
    reference = OnnxModel(
        local.path("model.onnx").read_bytes(),
        Signature.from_dict(json.loads(local.path("signature.json").read_text())),
    )
    rows = sample_data.churn_frame(200, seed=11, first_id=50_000)
    ours, theirs = served.predict(rows), reference.predict(rows)
    assert list(ours.labels) == list(theirs.labels)
    assert np.allclose(ours.probabilities, theirs.probabilities, atol=1e-6)
    assert training["rows_train"] == local.run.rows_train
    evaluation = model_outcome(json.loads(promoted["execution"]["output"]))["evaluation"]
    assert evaluation["metrics"]["roc_auc"] == pytest.approx(
        local.evaluation.metrics["roc_auc"], abs=1e-9
    )


def test_a_failing_training_job_notifies_and_fails_leaving_production(
    cloud: LocalCloud, promoted: dict[str, Any]
) -> None:
    bucket, s3 = cloud.outputs["DataBucketName"], cloud.client("s3")
    data_version = json.loads(promoted["execution"]["output"])["dataset"]["data_version"]
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=f"curated/churn/{data_version}/manifest.json")[
            "Body"
        ].read()
    )
    s3.put_object(Bucket=bucket, Key=manifest["files"][0], Body=b"not parquet")
    before = len(cloud.sent_notifications())
    started = cloud.client("stepfunctions").start_execution(
        stateMachineArn=cloud.pipeline_arn,
        name="retrain-broken-curated-file",
        input=json.dumps({"retrain": {"data_version": data_version, "reason": "e2e"}}),
    )
    described = cloud.wait_for_execution(started["executionArn"], timeout=300)
    assert described["status"] == "FAILED"
    assert described["error"] == "States.TaskFailed"
    cause = json.loads(described["cause"])
    assert cause["TrainingJobStatus"] == "Failed"
    assert cause["FailureReason"].startswith("AlgorithmError: ")
    assert "Collect training run" not in _entered(cloud, started["executionArn"])
    (alert,) = cloud.sent_notifications()[before:]
    assert json.loads(alert["Message"])["error"] == "States.TaskFailed"
    registry = ModelRegistry(cloud.outputs["RegistryTableName"], cloud.client("dynamodb"))
    alias = registry.get_alias("churn")
    assert alias is not None and alias.version == 1
