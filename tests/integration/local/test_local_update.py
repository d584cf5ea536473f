"""A stack update on the local cloud (`LocalCloud.update`): unchanged resources keep their data,
changed ones are updated in place or replaced as CloudFormation would, removed ones deleted
unless retained."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from infra.cdk.layers import missing_python_message, runtime_python
from infra.cli.main import app
from infra.local import LocalCloud, workers
from infra.local.assembly import load_stack
from infra.local.resources import DeployError


def _code(tmp_path: Path, version: str) -> dict[str, Path]:
    """A function asset whose handler `version_probe.handler` answers `version`."""
    directory = tmp_path / f"code-{version}"
    directory.mkdir()
    (directory / "version_probe.py").write_text(
        "import os\n\n\ndef handler(event, context):\n"
        f"    return {{'version': {version!r}, 'pid': os.getpid()}}\n"
    )
    return {f"code{version}": directory}


def _function(version: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Code": {"S3Bucket": "cdk-assets", "S3Key": f"code{version}.zip"},
            "Handler": "version_probe.handler",
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Environment": {"Variables": {"RELEASE": version}},
        },
    }


def _table(key: str, **policies: str) -> dict[str, Any]:
    return {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
        **policies,
    }


def _invoke(cloud: LocalCloud, function: str) -> Any:
    response = cloud.client("lambda").invoke(FunctionName=function)
    return json.loads(response["Payload"].read())


def test_an_unchanged_bucket_keeps_its_objects_and_a_changed_function_runs_its_new_code(
    start_cloud: Callable[..., LocalCloud],
    make_assembly: Callable[..., Path],
    cfn: Any,
    tmp_path: Path,
) -> None:
    assets = {**_code(tmp_path, "v1"), **_code(tmp_path, "v2")}
    resources = {"Role": cfn.role(), "Data": cfn.bucket(), "Fn": _function("v1")}
    outputs = {"Release": {"Value": {"Fn::GetAtt": ["Fn", "Arn"]}}}
    cloud = start_cloud(resources, outputs, assets=assets)
    assert cloud.deployment is not None
    bucket = cloud.deployment.physical_id("Data")
    function = cloud.deployment.physical_id("Fn")
    cloud.client("s3").put_object(Bucket=bucket, Key="raw/old.csv", Body=b"a,b\n1,2\n")
    assert _invoke(cloud, function)["version"] == "v1"

    updated = cloud.update(
        make_assembly({**resources, "Fn": _function("v2")}, outputs, out="new", assets=assets)
    )

    assert updated.resources["Data"].change == "kept"
    assert updated.resources["Role"].change == "kept"
    assert updated.resources["Fn"].change == "updated"
    assert updated.physical_id("Fn") == function
    body = cloud.client("s3").get_object(Bucket=bucket, Key="raw/old.csv")["Body"].read()
    assert body == b"a,b\n1,2\n"
    assert _invoke(cloud, function)["version"] == "v2"
    environment = cloud.client("lambda").get_function_configuration(FunctionName=function)
    assert environment["Environment"]["Variables"] == {"RELEASE": "v2"}


@pytest.mark.slow
def test_a_function_worker_of_the_old_code_is_retired_by_the_update(
    start_cloud: Callable[..., LocalCloud],
    make_assembly: Callable[..., Path],
    cfn: Any,
    tmp_path: Path,
) -> None:
    if runtime_python() is None:
        pytest.fail(missing_python_message(), pytrace=False)
    assets = {**_code(tmp_path, "v1"), **_code(tmp_path, "v2")}
    cloud = start_cloud(
        {"Role": cfn.role(), "Fn": _function("v1")}, assets=assets, mode="server", port=0
    )
    assert cloud.deployment is not None
    function = cloud.deployment.physical_id("Fn")
    before = _invoke(cloud, function)
    (old_worker,) = workers.WORKERS.workers_of(function)

    cloud.update(
        make_assembly({"Role": cfn.role(), "Fn": _function("v2")}, out="new", assets=assets)
    )
    after = _invoke(cloud, function)

    assert (before["version"], after["version"]) == ("v1", "v2")
    assert after["pid"] != before["pid"], "the new code runs in a new execution environment"
    assert not old_worker.alive
    assert workers.WORKERS.workers_of(function)[0].spec.environment != old_worker.spec.environment


def test_a_table_whose_key_schema_changes_is_replaced_and_the_retained_old_one_kept(
    start_cloud: Callable[..., LocalCloud], make_assembly: Callable[..., Path]
) -> None:
    cloud = start_cloud(
        {
            "Registry": _table("pk", UpdateReplacePolicy="Retain"),
            "Scratch": _table("pk"),
        },
        {"RegistryName": {"Value": {"Ref": "Registry"}}},
    )
    assert cloud.deployment is not None
    old_registry = cloud.deployment.physical_id("Registry")
    old_scratch = cloud.deployment.physical_id("Scratch")
    dynamodb = cloud.client("dynamodb")
    dynamodb.put_item(TableName=old_registry, Item={"pk": {"S": "model#1"}})

    updated = cloud.update(
        make_assembly(
            {"Registry": _table("id", UpdateReplacePolicy="Retain"), "Scratch": _table("id")},
            {"RegistryName": {"Value": {"Ref": "Registry"}}},
            out="new",
        )
    )

    new_registry = updated.physical_id("Registry")
    assert updated.resources["Registry"].change == "replaced"
    assert new_registry != old_registry
    assert updated.outputs["RegistryName"] == new_registry
    assert dynamodb.describe_table(TableName=new_registry)["Table"]["KeySchema"] == [
        {"AttributeName": "id", "KeyType": "HASH"}
    ]
    assert dynamodb.scan(TableName=new_registry)["Items"] == []
    # UpdateReplacePolicy Retain: the old table stays, with its items, outside the stack.
    assert dynamodb.scan(TableName=old_registry)["Items"] == [{"pk": {"S": "model#1"}}]
    assert updated.removed["Registry (replaced)"].startswith("retained (Retain)")
    # The default policy deletes the replaced table.
    assert updated.removed["Scratch (replaced)"].startswith("deleted")
    assert old_scratch not in dynamodb.list_tables()["TableNames"]


def test_removed_resources_are_deleted_unless_retained(
    start_cloud: Callable[..., LocalCloud], make_assembly: Callable[..., Path], cfn: Any
) -> None:
    retained = {**cfn.bucket(), "DeletionPolicy": "Retain"}
    cloud = start_cloud(
        {
            "Archive": retained,
            "Scratch": cfn.bucket(),
            "Jobs": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Kept": {"Type": "AWS::SQS::Queue", "Properties": {}},
        }
    )
    assert cloud.deployment is not None
    archive, scratch = (cloud.deployment.physical_id(i) for i in ("Archive", "Scratch"))
    jobs = cloud.deployment.physical_id("Jobs")
    s3, sqs = cloud.client("s3"), cloud.client("sqs")
    for bucket in (archive, scratch):
        s3.put_object(Bucket=bucket, Key="drop.csv", Body=b"x\n")

    updated = cloud.update(
        make_assembly({"Kept": {"Type": "AWS::SQS::Queue", "Properties": {}}}, out="new")
    )

    assert updated.resources["Kept"].change == "kept"
    assert updated.removed["Jobs"].startswith("deleted")
    assert jobs not in sqs.list_queues().get("QueueUrls", [])
    buckets = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    assert scratch not in buckets
    assert archive in buckets
    assert s3.get_object(Bucket=archive, Key="drop.csv")["Body"].read() == b"x\n"
    assert updated.removed["Archive"].startswith("retained (Retain)")


def test_a_changed_state_machine_rule_and_alarm_are_updated_in_place(
    start_cloud: Callable[..., LocalCloud],
    make_assembly: Callable[..., Path],
    cfn: Any,
    tmp_path: Path,
) -> None:
    def template(state: str, pattern: str, threshold: int) -> dict[str, Any]:
        return {
            "Role": cfn.role(),
            "Machine": cfn.state_machine({state: {"Type": "Pass", "End": True}}, state),
            "OnDrop": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "EventPattern": {"source": [pattern]},
                    "Targets": [
                        {
                            "Id": f"Target{state}",
                            "Arn": {"Ref": "Machine"},
                            "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                        }
                    ],
                },
            },
            "Errors": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {
                    "MetricName": "Errors",
                    "Namespace": "AWS/Lambda",
                    "Statistic": "Sum",
                    "Period": 60,
                    "EvaluationPeriods": 1,
                    "Threshold": threshold,
                    "ComparisonOperator": "GreaterThanThreshold",
                },
            },
        }

    cloud = start_cloud(template("Old", "aws.s3", 1))
    assert cloud.deployment is not None
    machine = cloud.deployment.physical_id("Machine")
    rule = cloud.deployment.physical_id("OnDrop")
    alarm = cloud.deployment.physical_id("Errors")

    updated = cloud.update(make_assembly(template("New", "mlops.test", 5), out="new"))

    assert {updated.resources[i].change for i in ("Machine", "OnDrop", "Errors")} == {"updated"}
    assert updated.physical_id("Machine") == machine
    described = cloud.client("stepfunctions").describe_state_machine(stateMachineArn=machine)
    assert json.loads(described["definition"])["StartAt"] == "New"
    events = cloud.client("events")
    assert json.loads(events.describe_rule(Name=rule)["EventPattern"]) == {"source": ["mlops.test"]}
    targets = events.list_targets_by_rule(Rule=rule)["Targets"]
    assert [target["Id"] for target in targets] == ["TargetNew"]
    (described_alarm,) = cloud.client("cloudwatch").describe_alarms(AlarmNames=[alarm])[
        "MetricAlarms"
    ]
    assert described_alarm["Threshold"] == 5


def test_a_custom_named_resource_that_needs_replacing_fails_the_update(
    start_cloud: Callable[..., LocalCloud], make_assembly: Callable[..., Path]
) -> None:
    named = {**_table("pk"), "Properties": {**_table("pk")["Properties"], "TableName": "reg"}}
    cloud = start_cloud({"Registry": named})
    renamed = _table("id")
    renamed["Properties"]["TableName"] = "reg"

    with pytest.raises(DeployError, match="custom-named resource requires replacing"):
        cloud.update(make_assembly({"Registry": renamed}, out="new"))


@pytest.mark.slow
def test_mlops_local_update_updates_the_running_local_up_and_keeps_its_data(
    make_assembly: Callable[..., Path], cfn: Any, tmp_path: Path
) -> None:
    old = make_assembly({"Data": cfn.bucket()}, {"Bucket": {"Value": {"Ref": "Data"}}})
    new = make_assembly(
        {"Data": cfn.bucket(), "Jobs": {"Type": "AWS::SQS::Queue", "Properties": {}}},
        {"Bucket": {"Value": {"Ref": "Data"}}, "Jobs": {"Value": {"Ref": "Jobs"}}},
        out="new",
    )
    state_dir = tmp_path / "state"
    port = _free_port()
    common = ["--stack", load_stack(old).name, "--state-dir", str(state_dir), "--no-synth"]
    log = tmp_path / "local-up.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "local", "up", "--port", str(port)]
            + ["--cdk-out", str(old), "--in-process", *common],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )
    try:
        deadline = time.monotonic() + 120
        while not (state_dir / "local-up.json").exists():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        bucket = json.loads((state_dir / "outputs.json").read_text())["Bucket"]
        s3.put_object(Bucket=bucket, Key="raw/old.csv", Body=b"x\n")

        result = CliRunner().invoke(app, ["local", "update", "--cdk-out", str(new), *common])

        assert result.exit_code == 0, result.output
        assert "Jobs" in result.output and "created" in result.output
        assert "1 resources kept unchanged" in result.output
        assert s3.get_object(Bucket=bucket, Key="raw/old.csv")["Body"].read() == b"x\n"
        assert "Jobs" in json.loads((state_dir / "outputs.json").read_text())
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0, log.read_text()[-3000:]


def test_mlops_local_update_without_a_running_local_cloud_says_so(
    make_assembly: Callable[..., Path], cfn: Any, tmp_path: Path
) -> None:
    cdk_out = make_assembly({"Data": cfn.bucket()})
    arguments = ["--cdk-out", str(cdk_out), "--stack", load_stack(cdk_out).name, "--no-synth"]
    result = CliRunner().invoke(
        app, ["local", "update", *arguments, "--state-dir", str(tmp_path / "none")]
    )

    assert result.exit_code == 1
    assert "no local cloud is running on" in result.output
    assert "Traceback" not in result.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
