"""One provisioner per CloudFormation resource type, and the few types deliberately ignored."""

from __future__ import annotations

from collections.abc import Callable

from infra.local.resources import (
    awslambda,
    dynamodb,
    events,
    iam,
    kms,
    logs,
    messaging,
    s3,
    stepfunctions,
)
from infra.local.resources.base import Created, DeployContext, DeployError, ResourceSpec

Provisioner = Callable[[DeployContext, ResourceSpec], Created]

PROVISIONERS: dict[str, Provisioner] = {
    "AWS::S3::Bucket": s3.bucket,
    "AWS::S3::BucketPolicy": s3.bucket_policy,
    "Custom::S3BucketNotifications": s3.bucket_notifications,
    "AWS::DynamoDB::Table": dynamodb.table,
    "AWS::DynamoDB::GlobalTable": dynamodb.global_table,
    "AWS::IAM::Role": iam.role,
    "AWS::IAM::Policy": iam.policy,
    "AWS::IAM::ManagedPolicy": iam.managed_policy,
    "AWS::KMS::Key": kms.key,
    "AWS::KMS::Alias": kms.alias,
    "AWS::Logs::LogGroup": logs.log_group,
    "AWS::Lambda::Function": awslambda.function,
    "AWS::Lambda::LayerVersion": awslambda.layer_version,
    "AWS::Lambda::Version": awslambda.version,
    "AWS::Lambda::Alias": awslambda.alias,
    "AWS::SNS::Topic": messaging.topic,
    "AWS::SNS::TopicPolicy": messaging.topic_policy,
    "AWS::SNS::Subscription": messaging.subscription,
    "AWS::SQS::Queue": messaging.queue,
    "AWS::SQS::QueuePolicy": messaging.queue_policy,
    "AWS::StepFunctions::StateMachine": stepfunctions.state_machine,
    "AWS::Events::Rule": events.rule,
}

IGNORED: dict[str, str] = {
    "AWS::CDK::Metadata": "CDK usage metadata; it creates nothing",
    "AWS::Lambda::Permission": "invocation permissions are not enforced locally",
    "Custom::S3AutoDeleteObjects": (
        "empties a bucket when the stack is deleted; the local cloud is discarded whole"
    ),
}
"""Types the deployer skips on purpose, each with the reason (keep this list short)."""

__all__ = ["IGNORED", "PROVISIONERS", "Created", "DeployContext", "DeployError", "ResourceSpec"]
