"""Lambda functions run in-process: Lambda-shaped errors, the function's environment, a
context object, and error names Step Functions can Retry and Catch on."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.local import LocalCloud


def _invoke(cloud: LocalCloud, function: str, event: Any = None) -> tuple[dict[str, Any], Any]:
    response = cloud.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps(event or {}).encode()
    )
    return response, json.loads(response["Payload"].read())


def test_a_raising_handler_returns_its_exception_class_as_error_type(
    start_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    cloud = start_cloud(
        {"Role": cfn.role(), "Fail": cfn.function("fail")}, {"Fail": {"Value": {"Ref": "Fail"}}}
    )
    response, payload = _invoke(cloud, cloud.outputs["Fail"])
    assert response["FunctionError"] == "Unhandled"  # as Lambda reports a Python exception
    assert payload["errorType"] == "QuotaExceededError"
    assert payload["errorMessage"] == "quota of 3 drops per day reached"
    assert any("local_cloud_probe.py" in line for line in payload["stackTrace"])


def test_the_handler_sees_the_function_environment_and_a_context(
    start_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    cloud = start_cloud(
        {"Role": cfn.role(), "Echo": cfn.function("echo", timeout=20, env={"GREETING": "hi"})},
        {"Echo": {"Value": {"Ref": "Echo"}}},
    )
    _, payload = _invoke(cloud, cloud.outputs["Echo"], {"n": 1})
    assert payload["event"] == {"n": 1}
    assert payload["greeting"] == "hi"
    assert payload["function_name"] == cloud.outputs["Echo"]
    assert payload["memory"] == "256"
    assert 0 < payload["remaining_ms"] <= 20_000
    assert payload["endpoint"] is None  # in-process: boto3 is intercepted, no endpoint
    assert "GREETING" not in os.environ


def test_a_missing_handler_module_is_an_import_error(
    start_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    function = cfn.function("echo")
    function["Properties"]["Handler"] = "no_such_module.handler"
    cloud = start_cloud({"Role": cfn.role(), "Fn": function}, {"Fn": {"Value": {"Ref": "Fn"}}})
    _, payload = _invoke(cloud, cloud.outputs["Fn"])
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module" in payload["errorMessage"]


def test_step_functions_catch_the_handler_exception_by_class_name(
    machine_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    states = {
        "Drop": {
            "Type": "Task",
            "Resource": "${Fail}",
            "Retry": [{"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 2}],
            "Catch": [
                {"ErrorEquals": ["QuotaExceededError"], "ResultPath": "$.error", "Next": "Caught"}
            ],
            "Next": "Done",
        },
        "Caught": {"Type": "Pass", "End": True},
        "Done": {"Type": "Succeed"},
    }
    cloud = machine_cloud(states, "Drop", Fail=cfn.function("fail"))
    sfn = cloud.client("stepfunctions")
    sfn.start_execution(stateMachineArn=cloud.outputs["MachineArn"], name="quota", input="{}")
    described = cloud.wait_for_execution("quota", state_machine_arn=cloud.outputs["MachineArn"])
    assert described["status"] == "SUCCEEDED"
    error = json.loads(described["output"])["error"]
    assert error["Error"] == "QuotaExceededError"
    assert json.loads(error["Cause"])["errorMessage"] == "quota of 3 drops per day reached"


def test_an_environment_path_under_opt_names_the_file_in_the_functions_layer(
    start_cloud: Callable[..., LocalCloud], cfn: Any, lambda_code: Path
) -> None:
    """Lambda mounts a layer's content at /opt: a variable naming a file there (as predict's
    MLOPS_BOTOCORE_DATA does) gets the file in the layer's build."""
    layer = {
        "Type": "AWS::Lambda::LayerVersion",
        "Properties": {
            "Content": {
                "S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"},
                "S3Key": "probe.zip",
            },
            "CompatibleRuntimes": ["python3.13"],
        },
    }
    echo = cfn.function("echo", env={"GREETING": "/opt/local_cloud_probe.py"})
    echo["Properties"]["Layers"] = [{"Ref": "Layer"}]
    missing = cfn.function("echo", env={"GREETING": "/opt/no_such_file"})
    missing["Properties"]["Layers"] = [{"Ref": "Layer"}]
    cloud = start_cloud(
        {"Role": cfn.role(), "Layer": layer, "Echo": echo, "Missing": missing},
        {"Echo": {"Value": {"Ref": "Echo"}}, "Missing": {"Value": {"Ref": "Missing"}}},
    )
    _, payload = _invoke(cloud, cloud.outputs["Echo"])
    assert Path(payload["greeting"]) == lambda_code / "local_cloud_probe.py"
    _, payload = _invoke(cloud, cloud.outputs["Missing"])
    assert payload["greeting"] == "/opt/no_such_file"
