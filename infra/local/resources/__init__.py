"""One provisioner per CloudFormation resource type, and the few types deliberately ignored."""

from __future__ import annotations

from collections.abc import Callable

from infra.local.resources import (
    apigateway,
    awslambda,
    cloudwatch,
    dynamodb,
    events,
    firehose,
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
    "AWS::Logs::LogStream": logs.log_stream,
    "AWS::Logs::SubscriptionFilter": logs.subscription_filter,
    "AWS::Lambda::Function": awslambda.function,
    "AWS::Lambda::LayerVersion": awslambda.layer_version,
    "AWS::Lambda::Version": awslambda.version,
    "AWS::Lambda::Alias": awslambda.alias,
    "AWS::Lambda::Permission": awslambda.permission,
    "AWS::Lambda::EventInvokeConfig": awslambda.event_invoke_config,
    "AWS::SNS::Topic": messaging.topic,
    "AWS::SNS::TopicPolicy": messaging.topic_policy,
    "AWS::SNS::Subscription": messaging.subscription,
    "AWS::SQS::Queue": messaging.queue,
    "AWS::SQS::QueuePolicy": messaging.queue_policy,
    "AWS::StepFunctions::StateMachine": stepfunctions.state_machine,
    "AWS::Events::Rule": events.rule,
    "AWS::ApiGateway::RestApi": apigateway.rest_api,
    "AWS::ApiGateway::Resource": apigateway.resource,
    "AWS::ApiGateway::Method": apigateway.method,
    "AWS::ApiGateway::RequestValidator": apigateway.request_validator,
    "AWS::ApiGateway::Model": apigateway.model,
    "AWS::ApiGateway::Deployment": apigateway.deployment,
    "AWS::ApiGateway::Stage": apigateway.stage,
    "AWS::ApiGateway::UsagePlan": apigateway.usage_plan,
    "AWS::ApiGateway::ApiKey": apigateway.api_key,
    "AWS::ApiGateway::UsagePlanKey": apigateway.usage_plan_key,
    "AWS::KinesisFirehose::DeliveryStream": firehose.delivery_stream,
    "AWS::CloudWatch::Alarm": cloudwatch.alarm,
    "AWS::CloudWatch::Dashboard": cloudwatch.dashboard,
}

IGNORED: dict[str, str] = {
    "AWS::CDK::Metadata": "CDK usage metadata; it creates nothing",
    "AWS::ApiGateway::Account": (
        "sets the account-wide CloudWatch role API Gateway logs with; no local logging to route"
    ),
    "Custom::S3AutoDeleteObjects": (
        "empties a bucket when the stack is deleted; the local cloud is discarded whole"
    ),
}
"""Types the deployer skips on purpose, each with the reason (keep this list short)."""

__all__ = ["IGNORED", "PROVISIONERS", "Created", "DeployContext", "DeployError", "ResourceSpec"]
