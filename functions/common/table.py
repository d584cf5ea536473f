"""The registry table, shared by the dataset and model registries (kept apart from them so
the predict function imports no more than the model registry needs)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from functions.common import aws
from functions.common.errors import RegistryError


class RegistryTable:
    """The registry table; its DynamoDB client is created on first use unless one is passed
    in. Dataset and model registries keep their own items in it."""

    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self.table_name = table_name
        self._dynamodb = dynamodb

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = aws.client("dynamodb")
        return self._dynamodb

    def put_new(self, item: dict[str, Any]) -> bool:
        """Put `item` unless an item with its key exists already (then False, nothing written)."""
        try:
            self.dynamodb.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            if code == "ConditionalCheckFailedException":
                return False
            raise RegistryError(
                f"put_item on table {self.table_name} failed: {code}: {exc}"
            ) from exc
        return True
