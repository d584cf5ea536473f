"""Alerts: the SNS topic every failure and alarm notifies, encrypted with a customer key
(an AWS-managed SNS key cannot be used by CloudWatch alarms or EventBridge)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.cdk.config import DeployConfig
from infra.cdk.nag import acknowledge


def undelivered_queue(scope: Construct, construct_id: str, of_what: str) -> sqs.Queue:
    """An encrypted dead-letter queue, kept 14 days: deliveries EventBridge cannot make
    (throttling, a deleted target), or the on-failure records of a function's asynchronous
    invocations, land here rather than being dropped."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(
        queue, "AwsSolutions-SQS3", f"This queue is itself the dead-letter queue of {of_what}."
    )
    return queue


class Alerts(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, deploy: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the alerts topic of {deploy.stack_name}",
            enable_key_rotation=True,
            removal_policy=deploy.removal_policy,
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=f"{deploy.stack_name} alerts",
            master_key=self.key,
            enforce_ssl=True,
        )
