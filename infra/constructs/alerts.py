"""Alerts: the SNS topic every failure and alarm notifies, encrypted with a customer key
(an AWS-managed SNS key cannot be used by CloudWatch alarms or EventBridge)."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.config import DeployConfig


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
