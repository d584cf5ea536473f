"""A throwaway CDK app with the shapes the real stack uses, for the local deployer's tests:
`CDK_OUTDIR=<dir> python app.py` (no Docker, no AWS account needed)."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks

HERE = Path(__file__).resolve().parent


def build(stack: cdk.Stack) -> None:
    key = kms.Key(stack, "AlertsKey", enable_key_rotation=True)
    topic = sns.Topic(stack, "Alerts", master_key=key)
    bucket = s3.Bucket(
        stack,
        "Data",
        versioned=True,
        event_bridge_enabled=True,
        enforce_ssl=True,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        lifecycle_rules=[
            s3.LifecycleRule(prefix="tmp/", expiration=cdk.Duration.days(3)),
            s3.LifecycleRule(noncurrent_version_expiration=cdk.Duration.days(30)),
        ],
    )
    table = dynamodb.Table(
        stack,
        "Registry",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        time_to_live_attribute="ttl",
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
    )
    validate = lambda_.Function(
        stack,
        "Validate",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="cdk_probe_handlers.validate",
        code=lambda_.Code.from_asset(str(HERE / "handlers")),
        environment={"TABLE": table.table_name},
        timeout=cdk.Duration.seconds(30),
        log_group=logs.LogGroup(stack, "ValidateLogs", retention=logs.RetentionDays.ONE_WEEK),
    )
    table.grant_read_write_data(validate)
    bucket.grant_read(validate)
    summarize = lambda_.DockerImageFunction(
        stack,
        "Summarize",
        code=lambda_.DockerImageCode.from_image_asset(
            str(HERE / "image"), cmd=["cdk_probe_image.summarize"]
        ),
        environment={"BUCKET": bucket.bucket_name},
        timeout=cdk.Duration.minutes(1),
    )
    bucket.grant_read_write(summarize)

    check = tasks.LambdaInvoke(
        stack,
        "Check",
        lambda_function=validate,
        payload_response_only=True,
        result_path="$.validation",
    )
    check.add_retry(errors=["Throttled"], max_attempts=2, interval=cdk.Duration.seconds(1))
    notify = tasks.SnsPublish(
        stack,
        "Notify",
        topic=topic,
        message=sfn.TaskInput.from_object(
            {
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "key": sfn.JsonPath.string_at("$.detail.object.key"),
            }
        ),
        result_path=sfn.JsonPath.DISCARD,
    )
    failed = sfn.Fail(stack, "Failed", error_path="$.error.Error", cause_path="$.error.Cause")
    check.add_catch(notify.next(failed), errors=[sfn.Errors.ALL], result_path="$.error")
    machine = sfn.StateMachine(
        stack,
        "Pipeline",
        definition_body=sfn.DefinitionBody.from_chainable(check.next(sfn.Succeed(stack, "Done"))),
    )
    # SNS encrypts with the topic's key as the publisher: the state machine needs the key.
    key.grant(machine, "kms:GenerateDataKey", "kms:Decrypt")
    events.Rule(
        stack,
        "OnDrop",
        event_pattern=events.EventPattern(
            source=["aws.s3"],
            detail_type=["Object Created"],
            detail={
                "bucket": {"name": [bucket.bucket_name]},
                "object": {"key": [{"prefix": "raw/"}]},
            },
        ),
        targets=[targets.SfnStateMachine(machine)],
    )
    events.Rule(
        stack,
        "Nightly",
        schedule=events.Schedule.rate(cdk.Duration.days(1)),
        targets=[
            targets.LambdaFunction(
                summarize, event=events.RuleTargetInput.from_object({"job": "summary"})
            )
        ],
    )
    cdk.CfnOutput(stack, "DataBucketName", value=bucket.bucket_name)
    cdk.CfnOutput(stack, "PipelineStateMachineArn", value=machine.state_machine_arn)
    cdk.CfnOutput(stack, "RegistryTableName", value=table.table_name)
    cdk.CfnOutput(stack, "AlertsTopicArn", value=topic.topic_arn)


def main() -> None:
    app = cdk.App()
    build(cdk.Stack(app, "probe-dev"))
    app.synth()


if __name__ == "__main__":
    main()
