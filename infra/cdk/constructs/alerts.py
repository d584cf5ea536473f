"""Alerts: the SNS topic every failure and alarm notifies, encrypted with a customer key
(an AWS-managed SNS key cannot be used by CloudWatch alarms or EventBridge); the alarms, each
linking to its runbook section; and the dead-letter queues, each with its alarm."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.cdk.config import DeployConfig
from infra.cdk.nag import acknowledge

if TYPE_CHECKING:
    from infra.cdk.constructs.platform import Platform

ALARM_DESCRIPTION_MAX_CHARS = 1024
"""CloudWatch refuses a longer AlarmDescription."""


def runbook_anchor(alarm_id: str) -> str:
    """The runbook section of the alarm with construct id `alarm_id`: docs/runbook.md has a
    heading `### <alarm_id>`, which the docs' table of contents turns into this anchor."""
    return alarm_id.lower()


def alarm(
    scope: Construct,
    construct_id: str,
    metric: cloudwatch.IMetric,
    *,
    platform: Platform,
    means: str,
    threshold: float = 1,
    evaluation_periods: int = 1,
    comparison: cloudwatch.ComparisonOperator = (
        cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
    ),
    runbook: str | None = None,
) -> cloudwatch.Alarm:
    """An alarm notifying the alerts topic (no data: not breaching). Its description says what
    it `means`, then where its runbook section is (`[alerts] runbook_url`): the section of
    `runbook`, an alarm id, when one section serves several alarms (one per model), else its
    own."""
    anchor = runbook_anchor(runbook or construct_id)
    link = f"{platform.deploy.config.alerts.runbook_url}#{anchor}"
    description = f"{means} Runbook: {link}"
    if len(description) > ALARM_DESCRIPTION_MAX_CHARS:
        raise ValueError(
            f"alarm {construct_id}: its description is {len(description)} characters, over "
            f"CloudWatch's {ALARM_DESCRIPTION_MAX_CHARS}: shorten [alerts] runbook_url"
        )
    created = cloudwatch.Alarm(
        scope,
        construct_id,
        metric=metric,
        alarm_description=description,
        threshold=threshold,
        evaluation_periods=evaluation_periods,
        comparison_operator=comparison,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    created.add_alarm_action(cw_actions.SnsAction(platform.alerts))
    return created


def waiting_messages(queue: sqs.IQueue) -> cloudwatch.IMetric:
    """The messages waiting in a dead-letter queue (its alarm: at least one)."""
    return queue.metric_approximate_number_of_messages_visible(
        period=Duration.minutes(5), statistic=cloudwatch.Stats.MAXIMUM
    )


def undelivered_alarm(
    scope: Construct, queue_id: str, queue: sqs.IQueue, *, platform: Platform, means: str
) -> cloudwatch.Alarm:
    """`<queue_id>Alarm`: at least one message is waiting in the dead-letter queue."""
    return alarm(scope, f"{queue_id}Alarm", waiting_messages(queue), platform=platform, means=means)


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
