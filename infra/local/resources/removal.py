"""Deleting a deployed resource, as CloudFormation does when a stack update removes it from
the template or replaces it: one remover per type; a type without one stays in moto (the
update says so)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from infra.local.resources.base import Created, DeployContext

Remover = Callable[[DeployContext, Created, dict[str, Any]], None]
"""(context, the deployed resource, its resolved properties)."""


def _bucket(ctx: DeployContext, created: Created, _: dict[str, Any]) -> None:
    # CloudFormation refuses to delete a bucket that is not empty; CDK's auto-delete custom
    # resource empties it first, and the local cloud ignores that resource: empty it here.
    s3 = ctx.client("s3")
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=created.ref)
    for page in pages:
        versions = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        if versions:
            s3.delete_objects(
                Bucket=created.ref,
                Delete={
                    "Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]
                },
            )
    s3.delete_bucket(Bucket=created.ref)


def _role(ctx: DeployContext, created: Created, _: dict[str, Any]) -> None:
    iam = ctx.client("iam")
    for name in iam.list_role_policies(RoleName=created.ref)["PolicyNames"]:
        iam.delete_role_policy(RoleName=created.ref, PolicyName=name)
    for attached in iam.list_attached_role_policies(RoleName=created.ref)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=created.ref, PolicyArn=attached["PolicyArn"])
    iam.delete_role(RoleName=created.ref)


def _policy(ctx: DeployContext, created: Created, p: dict[str, Any]) -> None:
    iam = ctx.client("iam")
    name = p["PolicyName"]
    for role in p.get("Roles") or []:
        with contextlib.suppress(iam.exceptions.NoSuchEntityException):
            iam.delete_role_policy(RoleName=role, PolicyName=name)


def _permission(ctx: DeployContext, created: Created, p: dict[str, Any]) -> None:
    from infra.local.authz import stack

    function = str(p["FunctionName"])
    arn = function if function.startswith("arn:") else ctx.arn("lambda", f"function:{function}")
    stack.remove_function_permission(arn, created.ref)


def _queue_policy(ctx: DeployContext, created: Created, p: dict[str, Any]) -> None:
    for url in p.get("Queues") or []:
        ctx.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})


def _rule(ctx: DeployContext, created: Created, p: dict[str, Any]) -> None:
    events = ctx.client("events")
    bus = p.get("EventBusName", "default")
    targets = events.list_targets_by_rule(Rule=created.ref, EventBusName=bus)["Targets"]
    if targets:
        events.remove_targets(
            Rule=created.ref, EventBusName=bus, Ids=[target["Id"] for target in targets]
        )
    events.delete_rule(Name=created.ref, EventBusName=bus)


def _subscription_filter(ctx: DeployContext, created: Created, p: dict[str, Any]) -> None:
    ctx.client("logs").delete_subscription_filter(
        logGroupName=p["LogGroupName"], filterName=created.ref
    )


def _call(service: str, operation: str, parameter: str) -> Remover:
    def remove(ctx: DeployContext, created: Created, _: dict[str, Any]) -> None:
        getattr(ctx.client(service), operation)(**{parameter: created.ref})

    return remove


def _bucket_policy(ctx: DeployContext, created: Created, p: dict[str, Any]) -> None:
    ctx.client("s3").delete_bucket_policy(Bucket=p["Bucket"])


def _key(ctx: DeployContext, created: Created, _: dict[str, Any]) -> None:
    ctx.client("kms").schedule_key_deletion(KeyId=created.ref, PendingWindowInDays=7)


def _alarm(ctx: DeployContext, created: Created, _: dict[str, Any]) -> None:
    ctx.client("cloudwatch").delete_alarms(AlarmNames=[created.ref])


def _dashboard(ctx: DeployContext, created: Created, _: dict[str, Any]) -> None:
    ctx.client("cloudwatch").delete_dashboards(DashboardNames=[created.ref])


def _notifications(ctx: DeployContext, created: Created, p: dict[str, Any]) -> None:
    ctx.client("s3").put_bucket_notification_configuration(
        Bucket=p["BucketName"], NotificationConfiguration={}
    )


REMOVERS: dict[str, Remover] = {
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "Custom::S3BucketNotifications": _notifications,
    "AWS::DynamoDB::Table": _call("dynamodb", "delete_table", "TableName"),
    "AWS::IAM::Role": _role,
    "AWS::IAM::Policy": _policy,
    "AWS::KMS::Key": _key,
    "AWS::KMS::Alias": _call("kms", "delete_alias", "AliasName"),
    "AWS::Logs::LogGroup": _call("logs", "delete_log_group", "logGroupName"),
    "AWS::Logs::SubscriptionFilter": _subscription_filter,
    "AWS::Lambda::Function": _call("lambda", "delete_function", "FunctionName"),
    "AWS::Lambda::Permission": _permission,
    "AWS::SNS::Topic": _call("sns", "delete_topic", "TopicArn"),
    "AWS::SNS::Subscription": _call("sns", "unsubscribe", "SubscriptionArn"),
    "AWS::SQS::Queue": _call("sqs", "delete_queue", "QueueUrl"),
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::StepFunctions::StateMachine": _call(
        "stepfunctions", "delete_state_machine", "stateMachineArn"
    ),
    "AWS::Events::Rule": _rule,
    "AWS::KinesisFirehose::DeliveryStream": _call(
        "firehose", "delete_delivery_stream", "DeliveryStreamName"
    ),
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::CloudWatch::Dashboard": _dashboard,
}

UPDATE_RECORDED: dict[str, str] = {
    "AWS::DynamoDB::Table": "the table and its items are kept",
    "AWS::DynamoDB::GlobalTable": "the table and its items are kept",
    "AWS::IAM::ManagedPolicy": "the policy is kept",
    "AWS::KMS::Key": "the key is kept",
    "AWS::KMS::Alias": "the alias is kept",
    "AWS::Logs::LogStream": "the stream is kept",
    "AWS::SNS::Subscription": "the subscription is kept",
    "AWS::ApiGateway::RestApi": "the API is kept",
    "AWS::ApiGateway::Resource": "the resource is kept",
    "AWS::ApiGateway::RequestValidator": "the validator is kept",
    "AWS::ApiGateway::Model": "the model is kept",
    "AWS::ApiGateway::UsagePlan": "the usage plan is kept",
    "AWS::ApiGateway::ApiKey": "the key is kept",
    "AWS::ApiGateway::UsagePlanKey": "the usage plan key is kept",
}
"""Types whose in-place update the local cloud records but does not apply (what is kept).
Every other type's provisioner applies an update in place (`DeployContext.previous`)."""
