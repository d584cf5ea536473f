"""Seeded deployment defects: one at a time, a defect is injected into the running local cloud
(a copy of a function's deployment, or its configuration), and the cloud fails as AWS would,
with the error names Lambda and Step Functions report; the pipeline's Catch handles what it
should, and the raw data stays intact. With functions in-process (the old local cloud) each
of these passed unnoticed: a missing package was imported from the dev virtualenv, memory and
timeouts were not enforced.

These tests run function workers: without Python 3.13 they fail, saying how to get it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from functions.common.layout import reason_key
from functions.ml import sample_data
from infra.cdk.layers import missing_python_message, runtime_python
from infra.cli.main import app
from infra.local import LocalCloud

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fidelity-state")


@pytest.fixture(scope="module")
def cloud(cdk_out: Path, state_dir: Path) -> Iterator[LocalCloud]:
    if runtime_python() is None:
        pytest.fail(missing_python_message(), pytrace=False)
    with LocalCloud.start(
        cdk_out, mode="server", port=0, api_port=0, state_dir=state_dir
    ) as started:
        yield started


def test_the_smoke_test_passes_on_the_deploy_as_built_and_reports_no_model_yet(
    cloud: LocalCloud, state_dir: Path
) -> None:
    results = _smoke(cloud, state_dir)

    assert [r for r in results if not r.passed] == []
    functions = [r for r in results if r.check.startswith("function ")]
    assert len(functions) == 10, [r.check for r in results]
    assert all("initialised under Python 3.13" in r.detail for r in functions)
    (alias,) = [r for r in results if r.check == "alias production"]
    assert alias.detail == "no model of 'churn' promoted yet"
    cli = CliRunner().invoke(app, ["smoke", "--local", "--state-dir", str(state_dir)])
    assert cli.exit_code == 0, cli.output
    lines = cli.output.splitlines()
    assert lines[0].startswith("smoke test of local cloud at http://127.0.0.1:")
    assert sum(line.startswith("pass function ") for line in lines) == 10
    assert "  note: a first deploy has no model until a drop is trained and promoted" in lines


def _churn(rows: int, seed: int) -> bytes:
    return sample_data.encode(sample_data.churn_frame(rows, seed=seed, first_id=seed * 1_000_000))


def _lambda_errors(cloud: LocalCloud, execution: dict[str, Any]) -> list[str]:
    return [
        event["lambdaFunctionFailedEventDetails"]["error"]
        for event in cloud.execution_history(execution)
        if event["type"] == "LambdaFunctionFailed"
    ]


def _reason(cloud: LocalCloud, key: str) -> dict[str, Any]:
    bucket = cloud.outputs["DataBucketName"]
    quarantined = reason_key(key)
    body = cloud.client("s3").get_object(Bucket=bucket, Key=quarantined)["Body"].read()
    return dict(json.loads(body))


def _configured(cloud: LocalCloud, function: str, **configuration: Any) -> Callable[[], None]:
    """Change a function's configuration as `aws lambda update-function-configuration` does;
    returns what puts it back."""
    name = cloud.function_name(function)
    client = cloud.client("lambda")
    current = client.get_function_configuration(FunctionName=name)
    client.update_function_configuration(FunctionName=name, **configuration)
    saved = {key: current[key] for key in configuration}
    return lambda: client.update_function_configuration(FunctionName=name, **saved)


def test_a_package_missing_from_the_serving_layer_fails_init_and_the_api_answers_502(
    cloud: LocalCloud, state_dir: Path
) -> None:
    health = f"{cloud.api_url}/v1/health"
    with cloud.edited_function("ServingPredictFunction") as deployment:
        (layer,) = deployment.layers
        shutil.rmtree(layer / "python" / "onnxruntime")
        response = _get(health)
        invoked = cloud.client("lambda").invoke(
            FunctionName=cloud.function_name("ServingPredictFunction"), Payload=b"{}"
        )
        smoke = {r.check: r for r in _smoke(cloud, state_dir)}
    error = json.loads(invoked["Payload"].read())

    assert response == (502, {"message": "Internal server error"})
    failed = {check: r.detail for check, r in smoke.items() if not r.passed}
    assert set(failed) == {
        "function ServingPredictFunctionA0608FFB",
        *(f"API GET {route}" for route in ("/v1/health", "/v2/health/live", "/v2/health/ready")),
    }
    assert failed["function ServingPredictFunctionA0608FFB"].startswith(
        "Runtime.ImportModuleError: Unable to import module 'functions.predict.handler'"
    )
    assert invoked["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'onnxruntime'" in error["errorMessage"]
    assert _get(health)[0] in (200, 503), "the deployment as built imports again"


def test_a_drop_too_large_for_ingest_s_memory_runs_it_out_of_memory_and_is_quarantined(
    cloud: LocalCloud, state_dir: Path
) -> None:
    key = "raw/churn/fidelity-large.csv"
    body = _churn(200_000, seed=71)
    restore = _configured(cloud, "PipelineIngestFunction", MemorySize=256)
    try:
        execution = cloud.drop(key, body, timeout=300)
        smoke = {r.check: r for r in _smoke(cloud, state_dir)}
    finally:
        restore()
    ingest = smoke["function PipelineIngestFunctionA1CF7F84"]
    assert not ingest.passed, ingest.detail
    assert "uses over 50% of the function's memory" in ingest.detail

    assert execution["status"] == "FAILED"
    assert execution["error"] == "Runtime.OutOfMemory"
    assert _lambda_errors(cloud, execution) == ["Runtime.OutOfMemory"]
    reason = _reason(cloud, key)
    assert reason["code"] == "ingest_crashed"
    assert reason["details"]["lambda_error"] == "Runtime.OutOfMemory"
    assert reason["details"]["memory_mb"] == 256
    assert "ran out of its 256 MB of memory" in reason["message"]
    bucket = cloud.outputs["DataBucketName"]
    raw = cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert raw == body, "the raw object is intact"


def test_a_train_timeout_too_short_is_a_timed_out_sandbox_the_catch_handles(
    cloud: LocalCloud,
) -> None:
    restore = _configured(cloud, "PipelineTrainFunction", Timeout=1)
    try:
        execution = cloud.drop("raw/churn/fidelity-timeout.csv", _churn(60_000, seed=72))
    finally:
        restore()

    assert execution["status"] == "FAILED"
    assert execution["error"] == "Sandbox.Timedout"
    assert "Sandbox.Timedout" in _lambda_errors(cloud, execution)
    states = [
        event["stateEnteredEventDetails"]["name"]
        for event in cloud.execution_history(execution)
        if event["type"] == "TaskStateEntered"
    ]
    assert states[-1] == "Notify model failure", "the model's Catch sent the alert"


def test_a_state_over_256_kib_fails_the_execution_with_data_limit_exceeded(
    cloud: LocalCloud,
) -> None:
    with cloud.edited_function("PipelineTrainFunction") as deployment:
        handler = deployment.task_root / "functions" / "train" / "handler.py"
        source = handler.read_text()
        handler.unlink()  # the copy shares files with the original: replace, never edit
        handler.write_text(
            source
            + "\n\n_unpadded = lambda_handler\n\n\n"
            + "def lambda_handler(event, context):\n"
            + "    return {**_unpadded(event, context), 'padding': 'x' * 300_000}\n"
        )
        for compiled in (handler.parent / "__pycache__").glob("handler.*.pyc"):
            compiled.unlink()
        execution = cloud.drop("raw/churn/fidelity-state.csv", _churn(1_500, seed=73))

    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.DataLimitExceeded"


def _get(url: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    from infra.cli.predict_client import signed_request

    try:
        with urllib.request.urlopen(signed_request(url, "GET", None, {}), timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _smoke(cloud: LocalCloud, state_dir: Path) -> list[Any]:
    from functions.common.config.loading import load_config
    from infra.cli.smoke import run_smoke
    from infra.cli.target import resolve_target

    config = load_config()
    target = resolve_target(config, local=True, stage="dev", local_state=state_dir)
    return run_smoke(config, target, "dev", state_dir)


def test_a_drift_run_failing_every_attempt_sends_one_on_failure_record_to_its_queue(
    cloud: LocalCloud,
) -> None:
    queues = cloud.deployment.of_type("AWS::SQS::Queue") if cloud.deployment else {}
    [url] = [url for logical, url in queues.items() if logical.startswith("MonitoringFailed")]
    sqs = cloud.client("sqs")
    event = {"source": "mlops.test", "model": "churn"}
    with cloud.edited_function("MonitoringDriftFunction") as deployment:
        shutil.rmtree(deployment.task_root / "functions" / "monitor")
        cloud.client("lambda").invoke(
            FunctionName=cloud.function_name("MonitoringDriftFunction"),
            InvocationType="Event",
            Payload=json.dumps(event).encode(),
        )
        cloud.wait_idle(120)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    [message] = received["Messages"]
    record = json.loads(message["Body"])
    name = url.rsplit("/", 1)[-1]
    dimensions = [{"Name": "QueueName", "Value": name}]
    alarms = cloud.client("cloudwatch").describe_alarms_for_metric(
        MetricName="ApproximateNumberOfMessagesVisible", Namespace="AWS/SQS", Dimensions=dimensions
    )["MetricAlarms"]
    # moto matches the metric's name and namespace only: every queue's alarm answers.
    alarms = [a for a in alarms if a["Dimensions"] == dimensions]

    context = record["requestContext"]
    assert context["condition"] == "RetriesExhausted"
    assert context["approximateInvokeCount"] == 3
    assert context["functionArn"].endswith(
        f":function:{cloud.function_name('MonitoringDriftFunction')}:$LATEST"
    )
    assert record["requestPayload"] == json.loads(json.dumps(event))
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "Runtime.ImportModuleError"
    assert "functions.monitor" in record["responsePayload"]["errorMessage"]
    [alarm] = alarms
    assert alarm["Threshold"] == 1 and alarm["AlarmActions"]
    assert alarm["AlarmDescription"].endswith(
        "Runbook: docs/runbook.md#driftcheckretriesexhaustedalarm"
    )
