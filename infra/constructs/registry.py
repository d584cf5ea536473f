"""The registry: one DynamoDB table for dataset versions, frozen dataset contracts,
idempotency records and (with the training issue) model versions and aliases."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra.config import DeployConfig
from infra.constructs.data_lake import data_key

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expiration"


class Registry(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, deploy: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        key = data_key(self, deploy)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(
                name=PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED
            if key
            else dynamodb.TableEncryption.AWS_MANAGED,
            encryption_key=key,
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=deploy.stage_config.removal_policy == "retain",
            removal_policy=deploy.removal_policy,
        )
