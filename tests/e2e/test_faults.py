"""Fault tolerance on the local cloud: AWS calls of the functions fail at the call boundary
(an error response botocore parses and retries, as a real one; `infra.local.faults`), never
by code in our handlers. Transient failures are recovered by the state machine's Retry;
persistent ones end in Notify -> Failed with no partial dataset or model version visible and
production untouched, and a rerun then succeeds."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.adapters import aws
from functions.adapters.datasets import DatasetRegistry
from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.contracts import model_outcome
from functions.common.layout import quarantine_key, reason_key
from functions.ml import sample_data
from infra.local import LocalCloud, faults
from tests.helpers.config import ABSOLUTE_GATE, repo_config

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "churn"
# Every attempt of one call by a function's client (functions/adapters/aws.py): a fault that
# fails this many calls outlasts boto3's own retries, once.
CALL_ATTEMPTS = int(aws._CONFIG.retries["max_attempts"]) + 1  # type: ignore[attr-defined]
# The state machine's Retry of StorageError / RegistryError (infra/cdk/constructs/state_machine.py).
TASK_ATTEMPTS = 4
# Matched on the request line only (`^`: a fault's pattern is searched in the request line and
# the body): a step's lineage FAIL event names the failed key in its body, and must not be
# failed in its place.
CURATED_DATA = r"^PUT \S*/curated/churn/[0-9a-f]+/data\.parquet"
RUN_ARTIFACTS = r"^PUT \S*/models/churn/runs/"
MODEL_VERSION_ITEM = r'"sk": ?\{"S": ?"VERSION#\d{8}"\}'


def churn_csv(seed: int) -> bytes:
    return sample_data.encode(sample_data.churn_frame(1_500, seed=seed, first_id=seed * 10_000))


class Pipeline:
    """The deployed pipeline as an operator sees it: drops, executions, their histories, the
    registry, the curated data and the alerts."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        self.bucket = cloud.outputs["DataBucketName"]
        self.s3 = cloud.client("s3")
        self.sfn = cloud.client("stepfunctions")
        self.models = ModelRegistry(cloud.outputs["RegistryTableName"], cloud.client("dynamodb"))
        self.datasets = DatasetRegistry(
            cloud.outputs["RegistryTableName"], cloud.client("dynamodb")
        )

    def drop(self, key: str, body: bytes) -> dict[str, Any]:
        return self.cloud.drop(key, body, timeout=240)

    def body(self, key: str, version_id: str | None = None) -> bytes:
        extra = {"VersionId": version_id} if version_id else {}
        response = self.s3.get_object(Bucket=self.bucket, Key=key, **extra)
        return bytes(response["Body"].read())

    def start(self, name: str, document: dict[str, Any]) -> dict[str, Any]:
        started = self.sfn.start_execution(
            stateMachineArn=self.cloud.pipeline_arn, name=name, input=json.dumps(document)
        )
        return self.cloud.wait_for_execution(started["executionArn"], timeout=240)

    def retrain(self, name: str, data_version: str) -> dict[str, Any]:
        return self.start(name, {"retrain": {"data_version": data_version, "reason": name}})

    def attempts(self, execution: dict[str, Any], state: str) -> list[str]:
        """Each invocation of the state's function, in order: its error, or "succeeded"."""
        outcomes: list[str] = []
        current = None
        pages = self.sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution["executionArn"]
        )
        for event in (event for page in pages for event in page["events"]):
            if event["type"] == "TaskStateEntered":
                current = event["stateEnteredEventDetails"]["name"]
            elif current == state and event["type"] == "LambdaFunctionSucceeded":
                outcomes.append("succeeded")
            elif current == state and event["type"] == "LambdaFunctionFailed":
                outcomes.append(event["lambdaFunctionFailedEventDetails"]["error"])
        return outcomes

    def failure_alerts(self, execution: dict[str, Any]) -> list[dict[str, Any]]:
        messages = [json.loads(n["Message"]) for n in self.cloud.sent_notifications()]
        return [
            m for m in messages if m.get("execution") == execution["executionArn"] and "error" in m
        ]

    def snapshot(self) -> dict[str, Any]:
        """What anyone reading the lake or the registry sees."""
        listed = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix="curated/churn/"
        )
        alias = self.models.get_alias(MODEL)
        return {
            "curated": sorted(item["Key"] for page in listed for item in page.get("Contents", [])),
            "datasets": [v.data_version for v in self.datasets.list_versions("churn")],
            "versions": [v.version for v in self.models.list_versions(MODEL)],
            "alias": (alias.version, alias.revision) if alias else None,
            "history": len(self.models.history(MODEL)),
        }

    def function_name(self, stage: str) -> str:
        names = [
            f["FunctionName"]
            for page in self.cloud.client("lambda").get_paginator("list_functions").paginate()
            for f in page["Functions"]
            if f"Pipeline{stage}Function" in f["FunctionName"]
        ]
        assert len(names) == 1, names
        return names[0]


@pytest.fixture(scope="module")
def pipeline(synth_with_config: Callable[[str], Path]) -> Iterator[Pipeline]:
    cdk_out = synth_with_config(repo_config(gate=ABSOLUTE_GATE))
    with (
        LocalCloud.start(cdk_out, mode="server", port=0) as cloud,
        faults.shorter_retry_waits(0.02),
    ):
        try:
            run = Pipeline(cloud)
            first = run.drop("raw/churn/faults-first.csv", churn_csv(seed=31))
            assert first["status"] == "SUCCEEDED", (first.get("error"), first.get("cause"))
            yield run
        finally:
            faults.clear()


def _only_new(before: list[Any], after: list[Any]) -> list[Any]:
    return [item for item in after if item not in before]


def test_a_curated_write_failing_once_is_recovered_by_the_pipeline_retry(
    pipeline: Pipeline,
) -> None:
    before = pipeline.snapshot()
    with faults.inject(
        "s3.PutObject", "InternalError", times=CALL_ATTEMPTS, match=CURATED_DATA
    ) as fault:
        execution = pipeline.drop("raw/churn/faults-once.csv", churn_csv(seed=32))

    assert fault.failed == CALL_ATTEMPTS, "boto3 retried the write before giving up"
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert pipeline.attempts(execution, "Ingest") == ["StorageError", "succeeded"]
    output = json.loads(execution["output"])
    outcome = model_outcome(output)
    after = pipeline.snapshot()
    assert _only_new(before["datasets"], after["datasets"]) == [output["dataset"]["data_version"]]
    assert output["dataset"]["manifest_key"] in after["curated"]
    assert _only_new(before["versions"], after["versions"]) == [outcome["registered"]["version"]]
    assert pipeline.failure_alerts(execution) == []


def test_a_persistent_storage_failure_fails_after_an_alert_leaves_nothing_and_a_rerun_succeeds(
    pipeline: Pipeline,
) -> None:
    key = "raw/churn/faults-persistent.csv"
    before = pipeline.snapshot()
    with faults.inject("s3.PutObject", "InternalError", match=CURATED_DATA) as fault:
        failed = pipeline.drop(key, churn_csv(seed=33))

    assert failed["status"] == "FAILED"
    assert failed["error"] == "StorageError"
    assert pipeline.attempts(failed, "Ingest") == ["StorageError"] * TASK_ATTEMPTS
    assert fault.failed == CALL_ATTEMPTS * TASK_ATTEMPTS
    [alert] = pipeline.failure_alerts(failed)
    assert alert["error"] == "StorageError"
    assert "InternalError" in alert["cause"]
    assert alert["input"]["detail"]["object"]["key"] == key
    assert pipeline.snapshot() == before, "no curated file, dataset, model or alias change"

    rerun = pipeline.start("rerun-persistent-storage", json.loads(failed["input"]))
    assert rerun["status"] == "SUCCEEDED", rerun.get("cause")
    output = json.loads(rerun["output"])
    outcome = model_outcome(output)
    assert output["dataset"]["source"]["key"] == key
    after = pipeline.snapshot()
    assert _only_new(before["datasets"], after["datasets"]) == [output["dataset"]["data_version"]]
    assert after["alias"][0] == outcome["registered"]["version"]


@pytest.mark.parametrize("code", ["ServiceException", "TooManyRequestsException"])
def test_a_lambda_service_error_is_retried(pipeline: Pipeline, code: str) -> None:
    train = pipeline.function_name("Train")
    data_version = pipeline.snapshot()["datasets"][0]
    with faults.inject("lambda.Invoke", code, times=1, match=train) as fault:
        execution = pipeline.retrain(f"lambda-{code}", data_version)

    assert fault.failed == 1
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert pipeline.attempts(execution, "Train") == [f"Lambda.{code}", "succeeded"]


def test_a_throttled_registry_write_fails_without_a_version_and_a_rerun_registers_one(
    pipeline: Pipeline,
) -> None:
    data_version = pipeline.snapshot()["datasets"][0]
    before = pipeline.snapshot()
    with faults.inject("dynamodb.PutItem", "ThrottlingException", match=MODEL_VERSION_ITEM):
        failed = pipeline.retrain("throttled-register", data_version)

    assert failed["status"] == "FAILED"
    assert failed["error"] == "RegistryError"
    assert pipeline.attempts(failed, "Register") == ["RegistryError"] * TASK_ATTEMPTS
    [alert] = pipeline.failure_alerts(failed)
    assert alert["error"] == "RegistryError" and "ThrottlingException" in alert["cause"]
    assert pipeline.snapshot() == before, "no version registered, production unchanged"
    assert pipeline.models.get_alias(MODEL) is not None

    rerun = pipeline.retrain("throttled-register-rerun", data_version)
    assert rerun["status"] == "SUCCEEDED", rerun.get("cause")
    version = model_outcome(json.loads(rerun["output"]))["registered"]["version"]
    after = pipeline.snapshot()
    assert _only_new(before["versions"], after["versions"]) == [version]
    assert after["alias"][0] == version


def test_a_task_timing_out_fails_after_an_alert_and_promotes_nothing(pipeline: Pipeline) -> None:
    lambda_ = pipeline.cloud.client("lambda")
    train = pipeline.function_name("Train")
    timeout = lambda_.get_function_configuration(FunctionName=train)["Timeout"]
    data_version = pipeline.snapshot()["datasets"][0]
    before = pipeline.snapshot()
    # A slow write of the run's artifacts takes the function past a one-second timeout.
    lambda_.update_function_configuration(FunctionName=train, Timeout=1)
    try:
        with faults.inject("s3.PutObject", delay=1.5, times=1, match=RUN_ARTIFACTS):
            failed = pipeline.retrain("train-timeout", data_version)
    finally:
        lambda_.update_function_configuration(FunctionName=train, Timeout=timeout)

    assert failed["status"] == "FAILED"
    assert failed["error"] == "Sandbox.Timedout"
    assert pipeline.attempts(failed, "Train") == ["Sandbox.Timedout"]
    [alert] = pipeline.failure_alerts(failed)
    assert "Task timed out after 1.00 seconds" in alert["cause"]
    assert pipeline.snapshot() == before

    rerun = pipeline.retrain("train-timeout-rerun", data_version)
    assert rerun["status"] == "SUCCEEDED", rerun.get("cause")


@pytest.mark.parametrize(
    ("error", "message", "limit"),
    [
        ("Runtime.OutOfMemory", "Runtime exited with error: signal: killed", "2,048 MB of memory"),
        ("Sandbox.Timedout", "Task timed out after 900.00 seconds", "900 s timeout"),
    ],
)
def test_a_drop_that_kills_ingest_is_quarantined_unread_by_the_catch_and_raw_stays_intact(
    pipeline: Pipeline, error: str, message: str, limit: str
) -> None:
    name = f"faults-crash-{error.lower().replace('.', '-')}.csv"
    key = f"raw/churn/{name}"
    body = churn_csv(seed=35 if "Memory" in error else 36)
    before = pipeline.snapshot()
    with faults.crash(pipeline.function_name("Ingest"), error, times=1) as crash:
        execution = pipeline.drop(key, body)

    assert crash.crashed == 1
    assert execution["status"] == "FAILED"
    assert execution["error"] == error
    assert pipeline.attempts(execution, "Ingest") == [error], "a crash is not retried"
    assert pipeline.attempts(execution, "Quarantine crashed drop") == ["succeeded"]
    reason = json.loads(pipeline.body(reason_key(f"raw/churn/{name}")))
    assert reason["code"] == "ingest_crashed"
    assert reason["error"] == "IngestCrashedError"
    assert limit in reason["message"] and error in reason["message"]
    assert reason["details"]["lambda_error"] == error
    assert message in reason["details"]["lambda_message"]
    assert reason["source"]["key"] == key
    assert pipeline.body(quarantine_key(f"raw/churn/{name}")) == body
    raw_version = reason["source"]["version_id"]
    assert pipeline.body(key, raw_version) == body, "the raw object version is intact"
    [alert] = pipeline.failure_alerts(execution)
    assert alert["error"] == error
    assert pipeline.snapshot() == before, "no curated file, dataset, model or alias change"
