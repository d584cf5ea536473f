"""Small CloudFormation templates in CDK's shapes, written as a cloud assembly, and local
clouds started from them (in-process unless a test asks for the server)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from infra.local import LocalCloud

LAMBDA_CODE = Path(__file__).parent / "lambda_code"
PROBE_ASSET = "probe"
STACK = "local-test"


class Cfn:
    """Builders for the resources the tests combine (logical ids are the caller's)."""

    @staticmethod
    def role() -> dict[str, Any]:
        """The probes' one role: Lambda, Step Functions and EventBridge may assume it; it has
        AWS's managed policy for function logs and may call what the probes call. These tests
        exercise the runtime, not IAM (test_iam_authz.py does), so its grants are broad."""
        return {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {
                                "Service": [
                                    "lambda.amazonaws.com",
                                    "states.amazonaws.com",
                                    "events.amazonaws.com",
                                ]
                            },
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "ManagedPolicyArns": [
                    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
                ],
                "Policies": [
                    {
                        "PolicyName": "probe",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": [
                                        "lambda:InvokeFunction",
                                        "states:StartExecution",
                                        "s3:GetObject",
                                        "s3:PutObject",
                                        "s3:ListBucket",
                                        "sqs:SendMessage",
                                        "sns:Publish",
                                    ],
                                    "Resource": "*",
                                }
                            ],
                        },
                    }
                ],
            },
        }

    @staticmethod
    def function(
        handler: str,
        role: str = "Role",
        timeout: int = 30,
        env: dict[str, Any] | None = None,
        memory: int = 256,
        ephemeral_storage: int | None = None,
        reserved: int | None = None,
    ) -> dict[str, Any]:
        """A Python zip function from the probe asset (`local_cloud_probe.<handler>`, or
        `module.handler` for another module of the asset)."""
        properties: dict[str, Any] = {
            "Code": {
                "S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"},
                "S3Key": f"{PROBE_ASSET}.zip",
            },
            "Handler": handler if "." in handler else f"local_cloud_probe.{handler}",
            "Runtime": "python3.13",
            "Role": {"Fn::GetAtt": [role, "Arn"]},
            "Timeout": timeout,
            "MemorySize": memory,
        }
        if ephemeral_storage is not None:
            properties["EphemeralStorage"] = {"Size": ephemeral_storage}
        if reserved is not None:
            properties["ReservedConcurrentExecutions"] = reserved
        if env:
            properties["Environment"] = {"Variables": env}
        return {"Type": "AWS::Lambda::Function", "Properties": properties, "DependsOn": [role]}

    @staticmethod
    def bucket() -> dict[str, Any]:
        """A versioned bucket sending its events to EventBridge (CloudFormation's own way)."""
        return {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "VersioningConfiguration": {"Status": "Enabled"},
                "NotificationConfiguration": {
                    "EventBridgeConfiguration": {"EventBridgeEnabled": True}
                },
            },
        }

    @staticmethod
    def state_machine(states: dict[str, Any], start_at: str, **arns: str) -> dict[str, Any]:
        """A state machine whose definition refers to `${name}` for each resource in `arns`
        (name -> logical id of a function), resolved with Fn::Sub's list form."""
        definition = json.dumps({"StartAt": start_at, "States": states})
        variables = {name: {"Fn::GetAtt": [logical, "Arn"]} for name, logical in arns.items()}
        return {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "DefinitionString": {"Fn::Sub": [definition, variables]},
                "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
            },
        }

    @staticmethod
    def on_failure_config(function: str, queue: str, retries: int = 1) -> dict[str, Any]:
        """Asynchronous invocations of `function` retried `retries` times, then their
        on-failure record sent to `queue` (logical ids)."""
        return {
            "Type": "AWS::Lambda::EventInvokeConfig",
            "Properties": {
                "FunctionName": {"Ref": function},
                "Qualifier": "$LATEST",
                "MaximumRetryAttempts": retries,
                "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}},
            },
        }

    @staticmethod
    def queue() -> dict[str, Any]:
        return {"Type": "AWS::SQS::Queue", "Properties": {}}

    @staticmethod
    def target(arn: dict[str, Any], dead_letter: str | None = None, **more: Any) -> dict[str, Any]:
        """A rule target `arn` (an intrinsic), with the dead-letter queue `dead_letter` (logical
        id) if given, and `more` target properties."""
        target = {"Arn": arn, **more}
        if dead_letter is not None:
            target["DeadLetterConfig"] = {"Arn": {"Fn::GetAtt": [dead_letter, "Arn"]}}
        return target

    @staticmethod
    def function_target(
        function: str, dead_letter: str | None = None, **more: Any
    ) -> dict[str, Any]:
        """A rule target invoking the function `function` (logical id); see `target`."""
        return Cfn.target({"Fn::GetAtt": [function, "Arn"]}, dead_letter, **more)

    @staticmethod
    def s3_rule(bucket: str, target: dict[str, Any], prefix: str = "raw/") -> dict[str, Any]:
        return {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "EventPattern": {
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": {
                        "bucket": {"name": [{"Ref": bucket}]},
                        "object": {"key": [{"prefix": prefix}]},
                    },
                },
                "State": "ENABLED",
                "Targets": [{"Id": "Target0", **target}],
            },
        }

    @staticmethod
    def schedule_rule(target: dict[str, Any], expression: str = "rate(1 day)") -> dict[str, Any]:
        return {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "ScheduleExpression": expression,
                "State": "ENABLED",
                "Targets": [{"Id": "Target0", **target}],
            },
        }


@pytest.fixture
def cfn() -> Cfn:
    return Cfn()


@pytest.fixture
def lambda_code() -> Path:
    """The directory of the probe handlers (the zip asset; a code root for image functions)."""
    return LAMBDA_CODE


def write_assembly(
    out: Path, template: dict[str, Any], assets: dict[str, Path] | None = None
) -> Path:
    """A minimal cloud assembly as `cdk synth` writes it: manifest, template, asset manifest."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{STACK}.template.json").write_text(json.dumps(template, indent=1))
    files = {
        asset_hash: {
            "source": {"path": str(path), "packaging": "zip"},
            "destinations": {
                "current_account-current_region": {
                    "bucketName": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}",
                    "objectKey": f"{asset_hash}.zip",
                }
            },
        }
        for asset_hash, path in (assets or {}).items()
    }
    (out / f"{STACK}.assets.json").write_text(json.dumps({"version": "55.0.0", "files": files}))
    manifest = {
        "version": "55.0.0",
        "artifacts": {
            f"{STACK}.assets": {
                "type": "cdk:asset-manifest",
                "properties": {"file": f"{STACK}.assets.json"},
            },
            STACK: {
                "type": "aws:cloudformation:stack",
                "environment": "aws://unknown-account/unknown-region",
                "properties": {"templateFile": f"{STACK}.template.json"},
                "dependencies": [f"{STACK}.assets"],
                "displayName": STACK,
            },
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture
def make_assembly(tmp_path: Path) -> Callable[..., Path]:
    def make(
        resources: dict[str, Any],
        outputs: dict[str, Any] | None = None,
        *,
        out: str = "cdk.out",
        assets: dict[str, Path] | None = None,
        **sections: Any,
    ) -> Path:
        """The assembly in `tmp_path / out`, with the probe asset and any other `assets`
        (asset hash -> directory; a function's `Code.S3Key` is `<hash>.zip`)."""
        template = {"Resources": resources, "Outputs": outputs or {}, **sections}
        return write_assembly(
            tmp_path / out, template, {PROBE_ASSET: LAMBDA_CODE, **(assets or {})}
        )

    return make


@pytest.fixture
def start_cloud(make_assembly: Callable[..., Path]) -> Iterator[Callable[..., LocalCloud]]:
    """Deploys a template (resources, outputs) and stops the cloud after the test."""
    clouds: list[LocalCloud] = []

    def start(
        resources: dict[str, Any],
        outputs: dict[str, Any] | None = None,
        assets: dict[str, Path] | None = None,
        **options: Any,
    ) -> LocalCloud:
        options.setdefault("mode", "inprocess")
        cloud = LocalCloud.start(make_assembly(resources, outputs, assets=assets), **options)
        clouds.append(cloud)
        return cloud

    yield start
    for cloud in clouds:
        cloud.stop()


@pytest.fixture
def drop_cloud(start_cloud: Callable[..., LocalCloud], cfn: Cfn) -> Callable[..., LocalCloud]:
    """Like `start_cloud`, with the data bucket `Data` (its name in output `Bucket`) and the
    probes' role `Role` beside the test's own resources: where drops land and what reacts."""

    def start(
        resources: dict[str, Any], outputs: dict[str, Any] | None = None, **options: Any
    ) -> LocalCloud:
        return start_cloud(
            {"Data": cfn.bucket(), "Role": cfn.role(), **resources},
            {"Bucket": {"Value": {"Ref": "Data"}}, **(outputs or {})},
            **options,
        )

    return start


@pytest.fixture
def machine_cloud(start_cloud: Callable[..., LocalCloud], cfn: Cfn) -> Callable[..., LocalCloud]:
    """Starts a cloud running the state machine `Machine` (its ARN in output `MachineArn`) of
    `states` from `start_at` under the probes' role; each of `functions` is a function
    `<name>Fn` that the definition calls as `${<name>}`."""

    def start(states: dict[str, Any], start_at: str, **functions: dict[str, Any]) -> LocalCloud:
        logical_ids = {name: f"{name}Fn" for name in functions}
        return start_cloud(
            {
                "Role": cfn.role(),
                **{logical_ids[name]: function for name, function in functions.items()},
                "Machine": cfn.state_machine(states, start_at, **logical_ids),
            },
            {"MachineArn": {"Value": {"Ref": "Machine"}}},
        )

    return start


@pytest.fixture
def probe() -> Iterator[ModuleType]:
    """The probe handlers' module, as the local Lambda runtime imports it, emptied."""
    sys.path.insert(0, str(LAMBDA_CODE))
    try:
        module = importlib.import_module("local_cloud_probe")
    finally:
        sys.path.remove(str(LAMBDA_CODE))
    module.RECEIVED.clear()
    yield module
    module.RECEIVED.clear()
