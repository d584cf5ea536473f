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


# The pipeline's Map over a dataset's models: each iteration built by ItemSelector from the
# item and the state, its errors caught inside it, its outcome kept at ResultPath; the
# statuses gathered by ResultSelector (an empty Map: none), tested and quoted by intrinsics.
MODELS_MAP = {
    "Models": {
        "Type": "Map",
        "ItemsPath": "$.targets.models",
        "ItemSelector": {
            "model.$": "$$.Map.Item.Value",
            "execution.$": "$.execution",
            "trigger.$": "$.targets.trigger",
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": "Gate",
            "States": {
                "Gate": {
                    "Type": "Choice",
                    "Choices": [
                        {"Variable": "$.model", "StringEquals": "crashes", "Next": "Crash"}
                    ],
                    "Default": "Done",
                },
                "Crash": {
                    "Type": "Parallel",
                    "Branches": [
                        {
                            "StartAt": "Train",
                            "States": {
                                "Train": {"Type": "Fail", "Error": "TrainFailed", "Cause": "x"}
                            },
                        }
                    ],
                    "ResultPath": "$.branches",
                    "Catch": [
                        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}
                    ],
                    "Next": "Done",
                },
                "Failed": {
                    "Type": "Pass",
                    "Result": "failed",
                    "ResultPath": "$.status",
                    "End": True,
                },
                "Done": {
                    "Type": "Pass",
                    "Result": "promoted",
                    "ResultPath": "$.status",
                    "End": True,
                },
            },
        },
        "ResultSelector": {"outcomes.$": "$", "statuses.$": "$[*].status"},
        "ResultPath": "$.models",
        "Next": "Count failed",
    },
    "Count failed": {
        "Type": "Pass",
        "Parameters": {
            "failed.$": "States.ArrayContains($.models.statuses, 'failed')",
            "cause.$": (
                "States.Format('models {} ended {}', States.JsonToString($.targets.models), "
                "States.JsonToString($.models.statuses))"
            ),
        },
        "ResultPath": "$.summary",
        "End": True,
    },
}


@pytest.mark.parametrize(
    ("models", "failed"), [(["a", "b"], False), (["a", "crashes", "b"], True), ([], False)]
)
def test_a_map_over_models_keeps_each_outcome_and_tells_whether_one_failed(
    machine_cloud: Callable[..., LocalCloud], models: list[str], failed: bool
) -> None:
    cloud = machine_cloud(MODELS_MAP, "Models")
    sfn = cloud.client("stepfunctions")
    document = {
        "execution": {"id": "exec-1"},
        "targets": {"models": models, "trigger": {"dataset": {"dataset": "churn"}}},
    }
    arn = sfn.start_execution(
        stateMachineArn=cloud.outputs["MachineArn"], name="models", input=json.dumps(document)
    )["executionArn"]
    described = cloud.wait_for_execution(arn)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    outcomes = output["models"]["outcomes"]
    assert [o["model"] for o in outcomes] == models
    assert all(o["execution"] == {"id": "exec-1"} for o in outcomes)
    assert all(o["trigger"] == {"dataset": {"dataset": "churn"}} for o in outcomes)
    assert [o["status"] for o in outcomes] == [
        "failed" if m == "crashes" else "promoted" for m in models
    ]
    statuses = [o["status"] for o in outcomes]
    assert output["models"]["statuses"] == statuses
    assert output["summary"]["failed"] is failed
    assert output["summary"]["cause"] == (
        f"models {json.dumps(models, separators=(',', ':'))} ended "
        f"{json.dumps(statuses, separators=(',', ':'))}"
    )
    crashed = [o for o in outcomes if o["status"] == "failed"]
    assert [o["error"] for o in crashed] == [{"Error": "TrainFailed", "Cause": "x"}] * len(crashed)
