"""Server mode: moto over HTTP on a free port, functions reaching it through
AWS_ENDPOINT_URL, and Step Functions calling Lambda through the same server."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from infra.local import LocalCloud


@pytest.mark.slow
def test_a_drop_runs_the_state_machine_and_functions_call_back_over_http(
    drop_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    states = {"Mark": {"Type": "Task", "Resource": "${Mark}", "End": True}}
    cloud = drop_cloud(
        {
            "MarkFn": cfn.function("write_marker", env={"BUCKET": {"Ref": "Data"}}),
            "Machine": cfn.state_machine(states, "Mark", Mark="MarkFn"),
            "Rule": cfn.s3_rule(
                "Data", {"Arn": {"Ref": "Machine"}, "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]}}
            ),
        },
        mode="server",
        port=0,
    )
    assert cloud.endpoint is not None and cloud.endpoint.startswith("http://127.0.0.1:")
    bucket = cloud.outputs["Bucket"]
    s3 = cloud.client("s3")
    s3.put_object(Bucket=bucket, Key="raw/drop.csv", Body=b"x")

    [execution] = cloud.wait_for_executions(1, timeout=30)
    assert execution["status"] == "SUCCEEDED", execution
    marker = json.loads(execution["output"])["marker"]
    written = json.loads(s3.get_object(Bucket=bucket, Key=marker)["Body"].read())
    assert written["detail"]["object"]["key"] == "raw/drop.csv"
    assert "AWS_ENDPOINT_URL" not in os.environ


@pytest.mark.slow
def test_only_one_local_cloud_runs_per_process(
    start_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    start_cloud({"Data": cfn.bucket()}, mode="server", port=0)
    with pytest.raises(RuntimeError, match="already running"):
        LocalCloud.start(mode="inprocess")
