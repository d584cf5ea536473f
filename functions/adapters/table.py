"""The registry table, shared by the dataset and model registries and the drift monitor's
state (kept apart from them so the predict function imports no more than the model registry
needs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from functions.adapters import aws
from functions.adapters.errors import failure, is_condition_failed, translated
from functions.common.errors import RegistryError


class RegistryTable:
    """The registry table; its DynamoDB client is created on first use unless one is passed
    in. Dataset and model registries keep their own items in it."""

    _dynamodb = aws.LazyClient("dynamodb")
    """The client, for the registry adapters built on this table only."""

    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self.table_name = table_name
        self._client = dynamodb

    def put_new(self, item: dict[str, Any]) -> bool:
        """Put `item` unless an item with its key exists already (then False, nothing written)."""
        return self._conditional(
            "put_item",
            lambda: self._dynamodb.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
            ),
        )

    def get(self, key: dict[str, Any]) -> dict[str, Any]:
        """The item at `key` (a consistent read), or {} when there is none."""
        with translated(RegistryError, f"get_item on table {self.table_name}"):
            response = self._dynamodb.get_item(
                TableName=self.table_name, Key=key, ConsistentRead=True
            )
        return dict(response.get("Item", {}))

    def count_formats(self) -> dict[tuple[str, int], int]:
        """{(item kind, format version): items} over the whole table (a Scan of those two
        attributes; an item without `format_version` is version 1)."""
        counts: dict[tuple[str, int], int] = {}
        scan: dict[str, Any] = {
            "TableName": self.table_name,
            "ProjectionExpression": "#kind, #version",
            "ExpressionAttributeNames": {"#kind": "kind", "#version": "format_version"},
        }
        while True:
            with translated(RegistryError, f"scan on table {self.table_name}"):
                page = self._dynamodb.scan(**scan)
            for item in page.get("Items", []):
                kind = str(item.get("kind", {}).get("S", ""))
                version = int(item.get("format_version", {}).get("N", "1"))
                counts[(kind, version)] = counts.get((kind, version), 0) + 1
            if "LastEvaluatedKey" not in page:
                return counts
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def update(self, key: dict[str, Any], expression: str, **arguments: Any) -> bool:
        """`update_item` of the item at `key` with `expression` and the call's other arguments
        (`ConditionExpression`, `ExpressionAttributeValues`, ...); False, nothing written, when
        the condition does not hold."""
        return self._conditional(
            "update_item",
            lambda: self._dynamodb.update_item(
                TableName=self.table_name, Key=key, UpdateExpression=expression, **arguments
            ),
        )

    def _conditional(self, operation: str, call: Callable[[], object]) -> bool:
        """Run the conditional write `call`: False when its condition does not hold.

        Raises:
            RegistryError: the write failed otherwise.
        """
        try:
            call()
        except ClientError as exc:
            if is_condition_failed(exc):
                return False
            raise failure(RegistryError, f"{operation} on table {self.table_name}", exc) from exc
        return True
