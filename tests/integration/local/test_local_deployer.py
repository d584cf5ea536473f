"""The local deployer: every resource handled or refused loudly, outputs resolved and written,
and CDK's bucket-notifications custom resource applied without its Lambda."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.s3.models import s3_backends

from infra.local import LocalCloud
from infra.local.assembly import load_stack
from infra.local.deployer import Deployer
from infra.local.resources import IGNORED, DeployError

ACCOUNT = "123456789012"


def _client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")


def test_an_unknown_resource_type_fails_before_anything_is_created(
    make_assembly: Callable[..., Path], cfn: Any
) -> None:
    cdk_out = make_assembly(
        {
            "Bucket": cfn.bucket(),
            "Cache": {"Type": "AWS::ElastiCache::CacheCluster", "Properties": {}},
        }
    )
    with mock_aws():
        with pytest.raises(DeployError) as error:
            Deployer(load_stack(cdk_out), _client, code_root=Path.cwd()).deploy()
        assert _client("s3").list_buckets()["Buckets"] == []
    assert "Cache (AWS::ElastiCache::CacheCluster)" in str(error.value)


def test_ignored_types_are_skipped_with_their_reason_and_permissions_are_created(
    start_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    cloud = start_cloud(
        {
            "Role": cfn.role(),
            "Fn": cfn.function("echo"),
            "CDKMetadata": {"Type": "AWS::CDK::Metadata", "Properties": {"Analytics": "v2:..."}},
            "InvokePermission": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": {"Fn::GetAtt": ["Fn", "Arn"]},
                    "Principal": "events.amazonaws.com",
                },
            },
        }
    )
    assert cloud.deployment is not None
    resources = cloud.deployment.resources
    assert resources["CDKMetadata"].status == "ignored"
    assert resources["CDKMetadata"].reason == IGNORED["AWS::CDK::Metadata"]
    assert resources["InvokePermission"].status == "created"
    assert resources["Fn"].status == "created"


def test_outputs_resolve_intrinsics_and_are_written_to_the_state_dir(
    start_cloud: Callable[..., LocalCloud], cfn: Any, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    cloud = start_cloud(
        {
            "Data": cfn.bucket(),
            "Alerts": {
                "Type": "AWS::SNS::Topic",
                "Properties": {"TopicName": {"Fn::Sub": "${AWS::StackName}-alerts"}},
            },
        },
        {
            "DataBucketName": {"Value": {"Ref": "Data"}},
            "DataBucketArn": {"Value": {"Fn::GetAtt": ["Data", "Arn"]}},
            "AlertsTopicArn": {"Value": {"Ref": "Alerts"}},
            "TopicName": {"Value": {"Fn::Select": [5, {"Fn::Split": [":", {"Ref": "Alerts"}]}]}},
        },
        state_dir=state_dir,
    )
    outputs = cloud.outputs
    assert outputs["DataBucketArn"] == f"arn:aws:s3:::{outputs['DataBucketName']}"
    assert outputs["AlertsTopicArn"] == "arn:aws:sns:us-east-1:123456789012:local-test-alerts"
    assert outputs["TopicName"] == "local-test-alerts"
    assert json.loads((state_dir / "outputs.json").read_text()) == outputs
    stack = json.loads((state_dir / "stack.json").read_text())
    assert stack["resources"]["Data"]["physical_id"] == outputs["DataBucketName"]
    assert cloud.client("s3").head_bucket(Bucket=outputs["DataBucketName"])


def test_cdk_bucket_notifications_turn_eventbridge_on_without_their_handler(
    start_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    handler = "BucketNotificationsHandler050a0587b7544547bf325f094a3db8347ECC3691"
    cloud = start_cloud(
        {
            "Data": {"Type": "AWS::S3::Bucket"},
            "HandlerRole": cfn.role(),
            handler: {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Code": {"ZipFile": "def handler(event, context):\n    raise RuntimeError\n"},
                    "Handler": "index.handler",
                    "Runtime": "python3.13",
                    "Role": {"Fn::GetAtt": ["HandlerRole", "Arn"]},
                },
            },
            "DataNotifications": {
                "Type": "Custom::S3BucketNotifications",
                "Properties": {
                    "ServiceToken": {"Fn::GetAtt": [handler, "Arn"]},
                    "BucketName": {"Ref": "Data"},
                    "NotificationConfiguration": {"EventBridgeConfiguration": {}},
                    "Managed": True,
                },
            },
        },
        {"DataBucketName": {"Value": {"Ref": "Data"}}},
    )
    assert cloud.deployment is not None
    skipped = cloud.deployment.resources[handler]
    assert skipped.status == "skipped"
    assert "Custom::S3BucketNotifications" in skipped.reason
    bucket = s3_backends[ACCOUNT]["aws"].get_bucket(cloud.outputs["DataBucketName"])
    assert bucket.notification_configuration is not None
    assert bucket.notification_configuration.event_bridge is not None
    assert cloud.client("lambda").list_functions()["Functions"] == []


def test_the_state_machine_gets_the_definition_exactly_as_synthesized(
    machine_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    states = {"Echo": {"Type": "Task", "Resource": "${Echo}", "End": True}}
    cloud = machine_cloud(states, "Echo", Echo=cfn.function("echo"))
    function_arn = cloud.client("lambda").list_functions()["Functions"][0]["FunctionArn"]
    described = cloud.client("stepfunctions").describe_state_machine(
        stateMachineArn=cloud.outputs["MachineArn"]
    )
    expected = {"StartAt": "Echo", "States": {"Echo": {**states["Echo"], "Resource": function_arn}}}
    assert described["definition"] == json.dumps(expected)


def test_an_image_function_needs_its_handler_in_the_image_command(
    make_assembly: Callable[..., Path], cfn: Any
) -> None:
    cdk_out = make_assembly(
        {
            "Role": cfn.role(),
            "Train": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "PackageType": "Image",
                    "Code": {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag"},
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                },
            },
        }
    )
    with pytest.raises(DeployError, match=r"Train \(AWS::Lambda::Function\).*ImageConfig.Command"):
        LocalCloud.start(cdk_out)


def test_an_image_function_runs_its_command_from_the_code_root(
    start_cloud: Callable[..., LocalCloud], cfn: Any, lambda_code: Path
) -> None:
    cloud = start_cloud(
        {
            "Role": cfn.role(),
            "Train": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "PackageType": "Image",
                    "Code": {
                        "ImageUri": {
                            "Fn::Sub": "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}"
                            "/cdk-hnb659fds-container-assets:abc"
                        }
                    },
                    "ImageConfig": {"Command": ["local_cloud_probe.echo"]},
                    "Environment": {"Variables": {"GREETING": "from the image"}},
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                },
            },
        },
        {"TrainName": {"Value": {"Ref": "Train"}}},
        code_root=lambda_code,
    )
    response = cloud.client("lambda").invoke(FunctionName=cloud.outputs["TrainName"], Payload=b"{}")
    assert json.loads(response["Payload"].read())["greeting"] == "from the image"
