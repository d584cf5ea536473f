"""Model versions in the registry table (keys: `functions.common.layout`).

- model version: written once (conditional put), never overwritten.
- version counter: an atomic ADD hands out 1, 2, ... and a number is never handed out twice,
  even when a registration that took it failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.adapters.registry.items import (
    ConditionFailed,
    InPlaceStamp,
    ModelTable,
    attributes,
    fields_of,
    item_key,
    translated,
)
from functions.common import formats
from functions.common.contracts import ModelVersion
from functions.common.errors import VersionExistsError
from functions.common.layout import (
    COUNTER_SORT_KEY,
    VERSION_PREFIX,
    model_key,
    version_sort_key,
)


class ModelVersions(ModelTable):
    """The registered versions of the models of one registry table."""

    def allocate_version(self, model: str) -> int:
        """The next version number of `model` (1, 2, ...); atomic, never handed out twice."""
        stamp = InPlaceStamp(formats.VERSION_COUNTER_ITEM)
        try:
            with translated("update_item", self.table_name):
                response = self._dynamodb.update_item(
                    TableName=self.table_name,
                    Key=item_key(model_key(model), COUNTER_SORT_KEY),
                    UpdateExpression=f"SET #kind = :kind, {stamp.assignment} ADD last_version :one",
                    ConditionExpression=stamp.condition,
                    ExpressionAttributeNames={"#kind": "kind", **stamp.names},
                    ExpressionAttributeValues={
                        ":one": {"N": "1"},
                        ":kind": {"S": "version_counter"},
                        **stamp.values,
                    },
                    ReturnValues="UPDATED_NEW",
                )
        except ConditionFailed:
            raise stamp.refused() from None
        counter = formats.read(formats.VERSION_COUNTER_ITEM, fields_of(response["Attributes"]))
        return int(counter["last_version"])

    def put_version(self, version: ModelVersion) -> None:
        """Register `version` once.

        Raises:
            VersionExistsError: that version number is already registered (nothing written).
        """
        item = {
            **item_key(model_key(version.model_name), version_sort_key(version.version)),
            "kind": {"S": "model_version"},
            **attributes(
                formats.stamp(formats.MODEL_VERSION_ITEM, version.model_dump(mode="json"))
            ),
        }
        if not self.put_new(item):
            raise VersionExistsError(
                f"version {version.version} of {version.model_name} is already registered"
            )

    def get_version(self, model: str, version: int) -> ModelVersion | None:
        fields = self._get(model_key(model), version_sort_key(version))
        return _model_version(fields) if fields else None

    def list_versions(self, model: str) -> list[ModelVersion]:
        """Every registered version of `model`, oldest (1) first."""
        return [_model_version(f) for f in self._query(model_key(model), VERSION_PREFIX)]


def _model_version(fields: Mapping[str, Any]) -> ModelVersion:
    current = formats.read(formats.MODEL_VERSION_ITEM, fields)
    return ModelVersion.model_validate(
        {name: current[name] for name in ModelVersion.model_fields if name in current}
    )
