"""The model side of the registry table, as items: how a value is stored and read back, the
key of an item, the reads (consistent get and paginated query) and the translation of
DynamoDB's errors that the runs, versions, aliases and rollouts modules share."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from functions.adapters.table import RegistryTable
from functions.common import formats
from functions.common.errors import RegistryError

KEY_ATTRIBUTES = frozenset({"pk", "sk", "kind"})
_CONDITION_FAILED = "ConditionalCheckFailedException"
_TRANSACTION_CANCELED = "TransactionCanceledException"
_LOST_RACE = frozenset({"ConditionalCheckFailed", "TransactionConflict"})
_LARGEST, _SMALLEST = 1e125, 1e-130
_EXACT_INTEGERS = 2**53

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class InPlaceStamp:
    """What an item updated in place (UpdateExpression) adds to its update: `assignment` sets
    `format_version` to the current version of `name`, and `condition` refuses (ConditionFailed)
    an item written by a newer release, so older code never stamps it down; `refused` is the
    error to raise then."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.assignment = "#format_version = :format_version"
        self.condition = (
            "attribute_not_exists(#format_version) OR #format_version <= :format_version"
        )
        self.names = {"#format_version": formats.FIELD}
        self.values = {":format_version": {"N": str(formats.current(name))}}

    def refused(self) -> formats.FormatVersionError:
        current = formats.current(self.name)
        return formats.FormatVersionError(
            f"{self.name} at {formats.FIELD} above {current} was written by a newer release of "
            f"the bundle; this code writes version {current}: upgrade it before writing"
        )


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ConditionFailed(Exception):
    """A conditional write or a transaction was refused; `reasons` has one code per item of a
    transaction ("None" for the items that were fine)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons


@contextmanager
def translated(operation: str, table: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        if code == _CONDITION_FAILED:
            raise ConditionFailed([code]) from exc
        if code == _TRANSACTION_CANCELED:
            reasons = [
                str(reason.get("Code", "None"))
                for reason in exc.response.get("CancellationReasons", [])
            ]
            if all(reason == "None" or reason in _LOST_RACE for reason in reasons):
                raise ConditionFailed(reasons) from exc
        raise RegistryError(f"{operation} on table {table} failed: {code}: {exc}") from exc


def storable(value: Any) -> Any:
    """JSON-like data as DynamoDB accepts it: floats become Decimals, except the ones DynamoDB
    cannot hold (NaN, infinities and beyond 1e125 become null; below 1e-130, zero); numpy
    scalars become numbers, tuples lists."""
    if isinstance(value, bool | str | Decimal) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number) or abs(number) >= _LARGEST:
            return None
        return Decimal(repr(number)) if abs(number) >= _SMALLEST else Decimal(0)
    if isinstance(value, Mapping):
        return {str(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return str(value)


def plain(value: Any) -> Any:
    """The inverse of `_storable`: Decimals back to int (whole numbers that a float holds
    exactly) or float. DynamoDB keeps no difference between 1 and 1.0: 1.0 comes back as 1."""
    if isinstance(value, Decimal):
        whole = value == value.to_integral_value() and abs(value) < _EXACT_INTEGERS
        return int(value) if whole else float(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def attributes(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(storable(value)) for name, value in fields.items()}


def fields_of(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: plain(_deserializer.deserialize(value))
        for name, value in item.items()
        if name not in KEY_ATTRIBUTES
    }


def item_key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


class ModelTable(RegistryTable):
    """The registry table's reads, shared by the model side's stores."""

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        with translated("get_item", self.table_name):
            response = self._dynamodb.get_item(
                TableName=self.table_name, Key=item_key(pk, sk), ConsistentRead=True
            )
        item = response.get("Item")
        return fields_of(item) if item else None

    def _query(
        self, pk: str, prefix: str, *, newest_first: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
            "ScanIndexForward": not newest_first,
        }
        found: list[dict[str, Any]] = []
        while limit is None or len(found) < limit:
            if limit is not None:
                query["Limit"] = limit - len(found)
            with translated("query", self.table_name):
                page = self._dynamodb.query(**query)
            found.extend(fields_of(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found
