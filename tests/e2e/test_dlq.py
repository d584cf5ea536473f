"""`mlops dlq` on the local cloud, as on-call uses it after a delivery failed: a drop whose
delivery to the pipeline failed waits in `drops`, `list` counts it, `show` says what and why,
`redrive` starts the pipeline for it as the rule would have and the drop is ingested; a drift
check that failed every attempt waits in `failed-drift-checks` and is run again by `redrive`.
A message whose re-delivery fails stays, and the command says which."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from functions.common.layout import REPORTS_PREFIX
from functions.ml import sample_data
from infra.cli.main import app
from infra.local import LocalCloud, faults

pytestmark = pytest.mark.slow

DROP = "raw/churn/dlq-redriven.csv"


class Operator:
    def __init__(self, cloud: LocalCloud, state_dir: Path) -> None:
        self.cloud = cloud
        self.state_dir = state_dir

    def cli(self, *args: str, code: int = 0) -> Any:
        result = CliRunner().invoke(
            app,
            [*args, "--state-dir", str(self.state_dir)],
            env={"COLUMNS": "200"},
            catch_exceptions=False,
        )
        assert result.exit_code == code, result.output
        return result

    def queues(self) -> dict[str, dict[str, Any]]:
        listed = json.loads(self.cli("dlq", "list", "--json").stdout)
        return {queue["queue"]: queue for queue in listed}

    def objects(self, prefix: str) -> list[str]:
        s3 = self.cloud.client("s3")
        bucket = self.cloud.outputs["DataBucketName"]
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def operator(cdk_out: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    state_dir = tmp_path_factory.mktemp("dlq") / "state"
    with LocalCloud.start(cdk_out, mode="server", port=0, state_dir=state_dir) as cloud:
        yield Operator(cloud, state_dir)


def test_a_drop_the_rule_could_not_deliver_is_shown_and_redriven_into_the_pipeline(
    operator: Operator,
) -> None:
    cloud = operator.cloud
    bucket = cloud.outputs["DataBucketName"]
    body = sample_data.encode(sample_data.churn_frame(1_500, seed=61, first_id=610_000))
    with faults.inject("sfn.StartExecution", "ThrottlingException", match=DROP):
        put = cloud.client("s3").put_object(Bucket=bucket, Key=DROP, Body=body)
        cloud.wait_idle(60)

        queues = operator.queues()
        shown = operator.cli("dlq", "show", "drops").stdout
        # Still throttled: the re-delivery fails, the message stays and is named.
        refused = operator.cli("dlq", "redrive", "drops", code=1)

    assert queues["drops"]["visible"] == 1
    assert queues["drops"]["oldest_age_seconds"] is not None
    assert all(queues[name]["visible"] == 0 for name in queues if name != "drops")
    assert f"s3://{bucket}/{DROP}#{put['VersionId']}" in shown
    assert "THROTTLING" in shown and "ThrottlingException" in shown
    assert cloud.outputs["PipelineStateMachineArn"] in shown
    assert "RawDropRule" in shown
    assert "ThrottlingException" in refused.stderr and "stays in drops" in refused.stderr
    assert DROP in refused.stderr
    assert operator.queues()["drops"]["visible"] == 1

    redriven = operator.cli("dlq", "redrive", "drops")

    assert "redrove 1 of 1" in redriven.stdout
    name = cloud.execution_name_for_object(bucket, DROP, put["VersionId"], put["ETag"])
    execution = cloud.wait_for_execution(name, timeout=300)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert json.loads(execution["input"])["detail"]["object"]["key"] == DROP
    drops = json.loads(operator.cli("drops", "list", "--json").stdout)
    [drop] = [d for d in drops if d["key"] == DROP]
    assert drop["outcome"] == "ingested" and drop["data_version"]
    assert operator.queues()["drops"]["visible"] == 0


def test_a_drift_check_that_failed_every_attempt_is_run_again_by_a_redrive(
    operator: Operator,
) -> None:
    cloud = operator.cloud
    # An asynchronous invocation (the schedule's checks go through the drift checks state
    # machine, which catches a failed check; see test_drift_checks).
    event = {"source": "mlops.test", "model": "churn"}
    with cloud.edited_function("MonitoringDriftFunction") as deployment:
        shutil.rmtree(deployment.task_root / "functions" / "monitor")
        cloud.client("lambda").invoke(
            FunctionName=cloud.function_name("MonitoringDriftFunction"),
            InvocationType="Event",
            Payload=json.dumps(event).encode(),
        )
        cloud.wait_idle(120)

    [letter] = json.loads(operator.cli("dlq", "show", "failed-drift-checks", "--json").stdout)
    results_before = operator.objects(f"{REPORTS_PREFIX}drift/")

    assert letter["condition"] == "RetriesExhausted" and letter["invoke_count"] == 3
    assert letter["error_code"] == "Runtime.ImportModuleError"
    assert letter["event"] == event
    assert cloud.function_name("MonitoringDriftFunction") in letter["target_arn"]

    redriven = operator.cli("dlq", "redrive", "failed-drift-checks")
    cloud.wait_idle(180)

    assert "redrove 1 of 1" in redriven.stdout
    assert operator.queues()["failed-drift-checks"]["visible"] == 0, "it ran, and did not fail"
    results = operator.objects(f"{REPORTS_PREFIX}drift/")
    assert len(results) > len(results_before), "the check ran and wrote its result"
