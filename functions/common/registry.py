"""DynamoDB adapter for the registry table (partition key `pk`, sort key `sk`, TTL attribute
`expiration`), dataset side:

- dataset version: pk=`DATASET#<name>`, sk=`VERSION#<data_version>`; written once (conditional
  put), so registering an existing version is a no-op that returns the first registration.
- dataset contract: pk=`DATASET#<name>`, sk=`CONTRACT`; the first writer wins and it is
  frozen from then on.

Idempotency records of the ingest function live in the same table (pk=`IDEMPOTENCY#ingest`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from functions.common.contracts import DatasetRef, SourceObject
from functions.common.errors import RegistryError
from functions.common.settings import stage_settings
from functions.common.table import RegistryTable

VERSION_PREFIX = "VERSION#"
CONTRACT_SORT_KEY = "CONTRACT"


def dataset_key(dataset: str) -> str:
    return f"DATASET#{dataset}"


@contextmanager
def _translated(operation: str, table: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        raise RegistryError(f"{operation} on table {table} failed: {code}: {exc}") from exc


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _version_item(ref: DatasetRef, code_version: str) -> dict[str, Any]:
    source = ref.source
    item: dict[str, Any] = {
        "pk": _s(dataset_key(ref.dataset)),
        "sk": _s(VERSION_PREFIX + ref.data_version),
        "kind": _s("dataset_version"),
        "dataset": _s(ref.dataset),
        "data_version": _s(ref.data_version),
        "rows": {"N": str(ref.rows)},
        "manifest_key": _s(ref.manifest_key),
        "curated_prefix": _s(ref.curated_prefix),
        "created_at": _s(ref.created_at),
        "code_version": _s(code_version),
        "source_bucket": _s(source.bucket),
        "source_key": _s(source.key),
    }
    if source.version_id:
        item["source_version_id"] = _s(source.version_id)
    if source.etag:
        item["source_etag"] = _s(source.etag)
    if source.size is not None:
        item["source_size"] = {"N": str(source.size)}
    return item


def _version_ref(item: dict[str, Any]) -> DatasetRef:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    source = SourceObject(
        bucket=item["source_bucket"]["S"],
        key=item["source_key"]["S"],
        version_id=text("source_version_id"),
        etag=text("source_etag"),
        size=int(item["source_size"]["N"]) if "source_size" in item else None,
    )
    return DatasetRef(
        dataset=item["dataset"]["S"],
        data_version=item["data_version"]["S"],
        manifest_key=item["manifest_key"]["S"],
        curated_prefix=item["curated_prefix"]["S"],
        rows=int(item["rows"]["N"]),
        source=source,
        created_at=item["created_at"]["S"],
    )


class DatasetRegistry(RegistryTable):
    """Dataset versions and contracts in the registry table."""

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        with _translated("get_item", self.table_name):
            response = self.dynamodb.get_item(
                TableName=self.table_name,
                Key={"pk": _s(pk), "sk": _s(sk)},
                ConsistentRead=True,
            )
        return response.get("Item")

    def get_contract(self, dataset: str) -> str | None:
        """The frozen contract of `dataset` (JSON text), or None before the first good drop."""
        item = self._get(dataset_key(dataset), CONTRACT_SORT_KEY)
        return item["contract"]["S"] if item else None

    def freeze_contract(
        self,
        dataset: str,
        contract_json: str,
        *,
        source_key: str,
        created_at: str,
        code_version: str,
    ) -> str:
        """Store `contract_json` unless a contract exists; return the contract now in force."""
        item = {
            "pk": _s(dataset_key(dataset)),
            "sk": _s(CONTRACT_SORT_KEY),
            "kind": _s("dataset_contract"),
            "contract": _s(contract_json),
            "inferred_from": _s(source_key),
            "created_at": _s(created_at),
            "code_version": _s(code_version),
        }
        if not self.put_new(item):
            stored = self.get_contract(dataset)
            if stored is None:
                raise RegistryError(f"contract of {dataset} vanished during freeze")
            return stored
        return contract_json

    def get_version(self, dataset: str, data_version: str) -> DatasetRef | None:
        item = self._get(dataset_key(dataset), VERSION_PREFIX + data_version)
        return _version_ref(item) if item else None

    def register_version(self, ref: DatasetRef, *, code_version: str) -> tuple[DatasetRef, bool]:
        """Register `ref` once. Returns (the registered version, True if this call created it);
        an existing version comes back as first registered, with `already_ingested=True`."""
        if not self.put_new(_version_item(ref, code_version)):
            existing = self.get_version(ref.dataset, ref.data_version)
            if existing is None:
                raise RegistryError(f"version {ref.data_version} vanished during register")
            return existing.model_copy(update={"already_ingested": True}), False
        return ref, True

    def list_versions(self, dataset: str) -> list[DatasetRef]:
        """Every registered version of `dataset`, oldest first (by created_at)."""
        versions: list[DatasetRef] = []
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": _s(dataset_key(dataset)),
                ":prefix": _s(VERSION_PREFIX),
            },
            "ConsistentRead": True,
        }
        while True:
            with _translated("query", self.table_name):
                page = self.dynamodb.query(**query)
            versions.extend(_version_ref(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(versions, key=lambda ref: (ref.created_at, ref.data_version))


def list_dataset_versions(dataset: str, table_name: str | None = None) -> list[DatasetRef]:
    """Registered versions of `dataset`, oldest first: all of them for `mode = "append"`, the
    last one for `mode = "replace"`. The table defaults to `$REGISTRY_TABLE`."""
    return DatasetRegistry(table_name or stage_settings().registry_table).list_versions(dataset)
