"""DynamoDB adapter for the registry table (partition key `pk`, sort key `sk`, TTL attribute
`expiration`), dataset side:

- dataset version: pk=`DATASET#<name>`, sk=`VERSION#<data_version>`; written once (conditional
  put), so registering an existing version is a no-op that returns the first registration.
- dataset contract: pk=`DATASET#<name>`, sk=`CONTRACT`; the first writer wins and it is
  frozen from then on.
- class set of a classification target: pk=`DATASET#<name>`, sk=`CLASSES`; frozen the same
  way, at the first good version.
- a retired version keeps its item, with `retired_at`, `retired_by` and `retired_reason` set
  (`mlops data retire`); training leaves it out.

Idempotency records of the ingest function live in the same table (pk=`IDEMPOTENCY#ingest`).
"""

from __future__ import annotations

import json
from typing import Any

from functions.adapters.errors import translated
from functions.adapters.registry.items import fields_of
from functions.adapters.table import RegistryTable
from functions.common import formats
from functions.common.contracts import DatasetRef, Retirement, SourceObject
from functions.common.errors import (
    DataVersionNotFoundError,
    DataVersionRetiredError,
    RegistryError,
)
from functions.common.layout import (
    CLASSES_SORT_KEY,
    CONTRACT_SORT_KEY,
    VERSION_PREFIX,
    dataset_key,
)
from functions.common.settings import stage_settings


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
        **_stamp(formats.DATASET_VERSION_ITEM),
    }
    if source.version_id:
        item["source_version_id"] = _s(source.version_id)
    if source.etag:
        item["source_etag"] = _s(source.etag)
    if source.size is not None:
        item["source_size"] = {"N": str(source.size)}
    return item


def _stamp(name: str) -> dict[str, Any]:
    """The `format_version` attribute of a `name` item written today."""
    return {formats.FIELD: {"N": str(formats.current(name))}}


def _version_ref(item: dict[str, Any]) -> DatasetRef:
    fields = formats.read(formats.DATASET_VERSION_ITEM, fields_of(item))
    source = SourceObject(
        bucket=fields["source_bucket"],
        key=fields["source_key"],
        version_id=fields.get("source_version_id"),
        etag=fields.get("source_etag"),
        size=fields.get("source_size"),
    )
    retired = (
        Retirement(
            at=fields["retired_at"], by=fields["retired_by"], reason=fields["retired_reason"]
        )
        if "retired_at" in fields
        else None
    )
    return DatasetRef(
        dataset=fields["dataset"],
        data_version=fields["data_version"],
        manifest_key=fields["manifest_key"],
        curated_prefix=fields["curated_prefix"],
        rows=fields["rows"],
        source=source,
        created_at=fields["created_at"],
        retired=retired,
    )


class DatasetRegistry(RegistryTable):
    """Dataset versions and contracts in the registry table."""

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self.get({"pk": _s(pk), "sk": _s(sk)}) or None

    def get_contract(self, dataset: str) -> str | None:
        """The frozen contract of `dataset` (JSON text), or None before the first good drop."""
        item = self._get(dataset_key(dataset), CONTRACT_SORT_KEY)
        if not item:
            return None
        return str(formats.read(formats.DATASET_CONTRACT_ITEM, fields_of(item))["contract"])

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
            **_stamp(formats.DATASET_CONTRACT_ITEM),
        }
        if not self.put_new(item):
            stored = self.get_contract(dataset)
            if stored is None:
                raise RegistryError(f"contract of {dataset} vanished during freeze")
            return stored
        return contract_json

    def get_classes(self, dataset: str) -> list[str] | None:
        """The frozen class set of `dataset`'s target (sorted), or None before the first good
        version of a classification dataset."""
        item = self._get(dataset_key(dataset), CLASSES_SORT_KEY)
        if not item:
            return None
        return list(
            json.loads(formats.read(formats.DATASET_CLASSES_ITEM, fields_of(item))["classes"])
        )

    def freeze_classes(
        self,
        dataset: str,
        classes: list[str],
        *,
        data_version: str,
        created_at: str,
        code_version: str,
    ) -> list[str]:
        """Store `classes` unless a class set exists; return the class set now in force."""
        item = {
            "pk": _s(dataset_key(dataset)),
            "sk": _s(CLASSES_SORT_KEY),
            "kind": _s("dataset_classes"),
            "classes": _s(json.dumps(sorted(classes))),
            "data_version": _s(data_version),
            "created_at": _s(created_at),
            "code_version": _s(code_version),
            **_stamp(formats.DATASET_CLASSES_ITEM),
        }
        if self.put_new(item):
            return sorted(classes)
        stored = self.get_classes(dataset)
        if stored is None:
            raise RegistryError(f"class set of {dataset} vanished during freeze")
        return stored

    def retire_version(self, dataset: str, data_version: str, retirement: Retirement) -> DatasetRef:
        """Mark a registered version retired (who, why, when); its files stay.

        Raises:
            DataVersionNotFoundError: no such version is registered.
            DataVersionRetiredError: it was retired before (the first retirement is kept).
        """
        if not self.update(
            {"pk": _s(dataset_key(dataset)), "sk": _s(VERSION_PREFIX + data_version)},
            "SET retired_at = :at, retired_by = :by, retired_reason = :why",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(retired_at)",
            ExpressionAttributeValues={
                ":at": _s(retirement.at),
                ":by": _s(retirement.by),
                ":why": _s(retirement.reason),
            },
        ):
            existing = self.get_version(dataset, data_version)
            if existing is None:
                raise DataVersionNotFoundError(
                    f"dataset version {data_version!r} of {dataset} is not registered"
                ) from None
            retired = existing.retired
            if retired is None:  # pragma: no cover - the condition failed for another reason
                raise RegistryError(f"retiring {data_version} failed its condition")
            raise DataVersionRetiredError(
                f"dataset version {data_version!r} of {dataset} is already retired "
                f"({retired.at} by {retired.by}: {retired.reason})"
            ) from None
        ref = self.get_version(dataset, data_version)
        if ref is None:
            raise RegistryError(f"version {data_version} vanished during retire")
        return ref

    def set_rows(self, dataset: str, data_version: str, rows: int) -> None:
        """Set the row count of a registered version (after an erasure rewrote its data); a
        version that is not registered is left alone."""
        self.update(
            {"pk": _s(dataset_key(dataset)), "sk": _s(VERSION_PREFIX + data_version)},
            "SET #rows = :rows",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#rows": "rows"},
            ExpressionAttributeValues={":rows": {"N": str(rows)}},
        )

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
            with translated(RegistryError, f"query on table {self.table_name}"):
                page = self._dynamodb.query(**query)
            versions.extend(_version_ref(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(versions, key=lambda ref: (ref.created_at, ref.data_version))


def list_dataset_versions(dataset: str, table_name: str | None = None) -> list[DatasetRef]:
    """Registered versions of `dataset`, oldest first: all of them for `mode = "append"`, the
    last one for `mode = "replace"`. The table defaults to `$REGISTRY_TABLE`."""
    return DatasetRegistry(table_name or stage_settings().registry_table).list_versions(dataset)
