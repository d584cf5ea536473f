"""One stack per stage (`<project>-<stage>`), composing one construct per concern."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aspects, CfnOutput, Stack, Tags
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.cdk.config import DeployConfig
from infra.cdk.constructs.alerts import Alerts
from infra.cdk.constructs.batch import BatchInference
from infra.cdk.constructs.canary import CanaryConsumer
from infra.cdk.constructs.data_lake import DataLake
from infra.cdk.constructs.monitoring import Monitoring
from infra.cdk.constructs.pipeline import Pipeline
from infra.cdk.constructs.platform import Platform
from infra.cdk.constructs.registry import Registry
from infra.cdk.constructs.serving_api import ServingApi
from infra.cdk.constructs.shadow import ShadowScoring, shadowed_models
from infra.cdk.nag import acknowledge
from infra.cdk.retention import StatefulRetention


class MlopsStack(Stack):
    def __init__(self, scope: Construct, *, deploy: DeployConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            deploy.stack_name,
            stack_name=deploy.stack_name,
            description=f"Serverless MLOps lifecycle for dataset {deploy.config.dataset.name!r} "
            f"({deploy.stage})",
            **kwargs,
        )
        Tags.of(self).add("project", deploy.config.project.name)
        Tags.of(self).add("stage", deploy.stage)
        Aspects.of(self).add(StatefulRetention(deploy))

        self.data_lake = DataLake(self, "DataLake", deploy=deploy)
        self._acknowledge_cdk_notifications_handler()
        self.registry = Registry(self, "Registry", deploy=deploy)
        self.alerts = Alerts(self, "Alerts", deploy=deploy)
        platform = Platform(deploy, self.data_lake, self.registry, self.alerts.topic)
        self.pipeline = Pipeline(self, "Pipeline", platform=platform)
        self.serving = ServingApi(self, "Serving", platform=platform)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            platform=platform,
            state_machine=self.pipeline.state_machine,
            serving=self.serving,
        )
        self.batch = BatchInference(self, "Batch", platform=platform)
        self.canary = CanaryConsumer(self, "Canary", platform=platform, serving=self.serving)
        shadowed = shadowed_models(platform)
        self.shadow = (
            ShadowScoring(
                self, "Shadow", platform=platform, layer=self.serving.layer, models=shadowed
            )
            if shadowed
            else None
        )
        # CloudWatch alarms publish to the alerts topic, encrypted with the alerts key.
        self.alerts.key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        # The state machines publish with their roles: SNS encrypts with the key as the
        # publisher, who needs kms:GenerateDataKey and kms:Decrypt on it.
        for machine in (
            self.pipeline.state_machine,
            self.batch.state_machine,
            self.monitoring.checks,
        ):
            self.alerts.key.grant(machine.role, "kms:Decrypt", "kms:GenerateDataKey")

        # Output names are a contract: the local cloud and users read them.
        outputs = {
            "DataBucketName": self.data_lake.bucket.bucket_name,
            "PipelineStateMachineArn": self.pipeline.state_machine.state_machine_arn,
            "RegistryTableName": self.registry.table.table_name,
            "AlertsTopicArn": self.alerts.topic.topic_arn,
            "ApiUrl": self.serving.url,
            "DriftFunctionName": self.monitoring.check.function.function_name,
            "DriftChecksStateMachineArn": self.monitoring.checks.state_machine_arn,
            "BatchStateMachineArn": self.batch.state_machine.state_machine_arn,
            # The dead-letter queues `mlops dlq` reads and redrives.
            "DropsDeadLetterQueueUrl": self.pipeline.undelivered.queue_url,
            "BatchStartsDeadLetterQueueUrl": self.batch.undelivered.queue_url,
            "MonitoringEventsDeadLetterQueueUrl": self.monitoring.undelivered.queue_url,
            "FailedDriftChecksQueueUrl": self.monitoring.failed_checks.queue_url,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)

    def _acknowledge_cdk_notifications_handler(self) -> None:
        """CDK's own singleton that turns on the bucket's EventBridge notifications at deploy."""
        for child in self.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                acknowledge(
                    child,
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                    "service-role/AWSLambdaBasicExecutionRole]",
                    "CDK's built-in handler for Custom::S3BucketNotifications: its role and "
                    "policy are fixed by aws-cdk-lib and it runs only during deployment.",
                )
                acknowledge(
                    child,
                    "AwsSolutions-IAM5[Resource::*]",
                    "CDK's built-in notifications handler calls s3:PutBucketNotification, "
                    "which CDK grants on '*'; it runs only during deployment.",
                )
