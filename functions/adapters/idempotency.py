"""Powertools idempotency records in the registry table (pk=`<partition>`, sk=the key of the
call), written with the function's shared DynamoDB client."""

from __future__ import annotations

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from functions.adapters import aws


def persistence_layer(table_name: str, partition: str) -> DynamoDBPersistenceLayer:
    """The store of idempotency records under the partition key value `partition`; build it per
    call, not at import: the client must be created after moto or the local cloud started."""
    return DynamoDBPersistenceLayer(
        table_name=table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=partition,
        boto3_client=aws.client("dynamodb"),
    )
