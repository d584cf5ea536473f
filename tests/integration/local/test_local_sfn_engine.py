"""moto's Step Functions interpreter as the local cloud configures it: JSONata evaluated by
jsonata-python, and no ERROR logs for executions that fail on purpose."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from infra.local import LocalCloud


def test_jsonata_states_evaluate_without_a_jvm(machine_cloud: Callable[..., LocalCloud]) -> None:
    states = {
        "Shape": {
            "Type": "Pass",
            "QueryLanguage": "JSONata",
            "Assign": {"rows": "{% $states.input.rows %}"},
            "Output": {"key": "{% $uppercase($states.input.key) %}", "double": "{% $rows * 2 %}"},
            "End": True,
        }
    }
    cloud = machine_cloud(states, "Shape")
    sfn = cloud.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=cloud.outputs["MachineArn"],
        name="jsonata",
        input=json.dumps({"key": "raw/a.csv", "rows": 21}),
    )["executionArn"]
    described = cloud.wait_for_execution(arn)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"key": "RAW/A.CSV", "double": 42}


def test_an_expected_fail_state_logs_no_error(
    machine_cloud: Callable[..., LocalCloud], caplog: pytest.LogCaptureFixture
) -> None:
    states = {"Reject": {"Type": "Fail", "Error": "DataValidationError", "Cause": "bad rows"}}
    cloud = machine_cloud(states, "Reject")
    with caplog.at_level(logging.WARNING, logger="moto.stepfunctions"):
        arn = cloud.client("stepfunctions").start_execution(
            stateMachineArn=cloud.outputs["MachineArn"], name="reject", input="{}"
        )["executionArn"]
        described = cloud.wait_for_execution(arn)
    assert (described["status"], described["error"]) == ("FAILED", "DataValidationError")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
