"""The registry: one DynamoDB table for dataset versions, frozen dataset contracts,
idempotency records and (with the training issue) model versions and aliases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.cdk.config import DeployConfig
from infra.cdk.constructs.data_lake import data_key

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expiration"


class Registry(Construct):
    """The stack's table (`owned`), and the table the functions use (`table`): the stack's own,
    or the restored table `[stages.<stage>] registry_table` names. After a restore the stack
    keeps its own table as it was (nothing is replaced or deleted; it stays for forensics),
    and every grant, the functions' `REGISTRY_TABLE` and the `RegistryTableName` output point
    at the restored one, encrypted with the same key (`mlops restore` restores it so)."""

    def __init__(self, scope: Construct, construct_id: str, *, deploy: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        key = data_key(self, deploy)
        self.owned = dynamodb.Table(
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
        self.table: dynamodb.ITable = self.owned
        restored = deploy.stage_config.registry_table
        if restored:
            self.table = dynamodb.Table.from_table_attributes(
                self, "Restored", table_name=restored, encryption_key=key
            )

    def grant_items(
        self, grantee: iam.IGrantable, *actions: str, partitions: Sequence[str] = ()
    ) -> None:
        """Exactly these item actions (`dynamodb:GetItem`, ...) on the table's items of
        `partitions` (`dynamodb:LeadingKeys`: `DATASET#<d>`, `MODEL#<m>`, ...), every partition
        when none is given. A transaction needs the actions of its parts; no stage scans the
        table, batches requests or reads its stream, so none is granted that."""
        unknown = sorted(set(actions) - set(ITEM_ACTIONS))
        if unknown:
            raise ValueError(f"not item actions of the registry: {', '.join(unknown)}")
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(actions),
            resource_arns=[self.table.table_arn],
            conditions=_leading_keys(partitions),
        )
        key = self.table.encryption_key
        if key is not None:
            writes = set(actions) - set(_READ_ACTIONS)
            if writes:
                key.grant_encrypt_decrypt(grantee)
            else:
                key.grant_decrypt(grantee)

    def grant_partitions(
        self,
        grantee: iam.IGrantable,
        *,
        read: Sequence[str] = (),
        write: Sequence[str] = (),
    ) -> None:
        """Items of the given partitions only (`dynamodb:LeadingKeys`): read `read`, read and
        write `write`. For the functions that face the outside world or need one model's
        items only, instead of `grant_read_write_data` on the whole table (dataset versions,
        contracts, runs and idempotency records included). Writes cover what a transaction
        of those items needs (put, update, delete, condition check); no Scan, no batch
        operation."""
        for partitions, actions in (
            (sorted({*read, *write}), _READ_ACTIONS),
            (sorted(set(write)), _WRITE_ACTIONS),
        ):
            if not partitions:
                continue
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=list(actions),
                resource_arns=[self.table.table_arn],
                conditions=_leading_keys(partitions),
            )
        key = self.table.encryption_key
        if key is not None:
            if write:
                key.grant_encrypt_decrypt(grantee)
            else:
                key.grant_decrypt(grantee)


def _leading_keys(partitions: Sequence[str]) -> dict[str, Any] | None:
    """The condition that limits item actions to `partitions` (None: no limit)."""
    if not partitions:
        return None
    return {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": sorted(set(partitions))}}


_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem")
_WRITE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
ITEM_ACTIONS = (*_READ_ACTIONS, *_WRITE_ACTIONS)
