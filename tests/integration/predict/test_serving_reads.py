"""Predict's pydantic-free registry reads (`ServingRegistry`) against moto: the same alias and
version as `ModelRegistry`'s contracts from the same items, and a broken item refused naming
its field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from functions.adapters.registry.aliases import CANDIDATE, PRODUCTION
from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.registry.serving_reads import ServingRegistry
from functions.common.errors import RegistryError
from functions.common.layout import alias_sort_key, model_key, version_sort_key
from tests.helpers.registry import model_version

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

MODEL = "churn"


def _plain(value: Any) -> dict[str, Any]:
    fields = value._asdict()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def test_aliases_and_versions_read_as_the_contracts_read_them(cloud: Cloud) -> None:
    registry, reads = ModelRegistry(cloud.table), ServingRegistry(cloud.table)
    registry.put_version(model_version(1, code_version="abc123"))
    registry.put_version(model_version(2, metrics={"roc_auc": 1.0, "f1_macro": 0.5}))
    registry.promote(MODEL, 1, expected_current=None, reason="first", execution="exec-1")
    registry.promote(MODEL, 2, expected_current=1, reason="better")
    registry.promote(MODEL, 1, expected_current=None, reason="try", alias=CANDIDATE)
    for alias in (PRODUCTION, CANDIDATE):
        contract = registry.get_alias(MODEL, alias)
        assert contract is not None
        assert _plain(reads.get_alias(MODEL, alias)) == contract.model_dump()
    for number in (1, 2):
        contract_version = registry.get_version(MODEL, number)
        assert contract_version is not None
        assert _plain(reads.get_version(MODEL, number)) == contract_version.model_dump()
    # A whole metric comes back from DynamoDB as an integer; both read it as a float.
    metrics = reads.get_version(MODEL, 2).metrics  # type: ignore[union-attr]
    assert metrics == {"roc_auc": 1.0, "f1_macro": 0.5}
    assert type(metrics["roc_auc"]) is float
    assert reads.get_alias(MODEL, "shadow") is None
    assert reads.get_version(MODEL, 3) is None
    assert reads.get_alias("other", PRODUCTION) is None


@pytest.mark.parametrize(
    ("sort_key", "attribute", "value", "message"),
    [
        (alias_sort_key(PRODUCTION), "version", {"S": "two"}, "field 'version' is not a valid int"),
        (alias_sort_key(PRODUCTION), "updated_at", None, "field 'updated_at' is missing"),
        (version_sort_key(1), "onnx_sha256", None, "field 'onnx_sha256' is missing"),
        (version_sort_key(1), "metrics", {"M": {"auc": {"S": "x"}}}, "field 'metrics'"),
        (version_sort_key(1), "promoted", {"S": "maybe"}, "field 'promoted' is not a valid bool"),
    ],
)
def test_a_broken_item_is_refused_naming_its_field(
    cloud: Cloud, sort_key: str, attribute: str, value: Any, message: str
) -> None:
    registry = ModelRegistry(cloud.table)
    registry.put_version(model_version(1))
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    key = {"pk": {"S": model_key(MODEL)}, "sk": {"S": sort_key}}
    item = cloud.dynamodb.get_item(TableName=cloud.table, Key=key)["Item"]
    assert attribute in item
    if value is None:
        del item[attribute]
    else:
        item[attribute] = value
    cloud.dynamodb.put_item(TableName=cloud.table, Item=item)
    reads = ServingRegistry(cloud.table)
    with pytest.raises(RegistryError, match=message):
        if sort_key == alias_sort_key(PRODUCTION):
            reads.get_alias(MODEL, PRODUCTION)
        else:
            reads.get_version(MODEL, 1)
    with pytest.raises(ValueError):  # the contract refuses it too (pydantic's error)
        if sort_key == alias_sort_key(PRODUCTION):
            registry.get_alias(MODEL, PRODUCTION)
        else:
            registry.get_version(MODEL, 1)
