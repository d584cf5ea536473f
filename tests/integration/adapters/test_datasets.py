"""The registry adapter: versions registered once, listed in order; contracts frozen once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from functions.adapters.datasets import DatasetRegistry, list_dataset_versions
from functions.common.contracts import DatasetRef, SourceObject
from functions.common.errors import RegistryError
from tests.helpers.datasets import dataset_ref

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud


def _ref(version: str, created_at: str, key: str = "raw/churn/a.csv") -> DatasetRef:
    source = SourceObject(bucket="b", key=key, version_id="v1", etag="e1", size=10)
    return dataset_ref(version, source, created_at=created_at, rows=120)


def test_a_version_is_registered_once_and_comes_back_as_first_registered(cloud: Cloud) -> None:
    registry = DatasetRegistry(cloud.table)
    first = _ref("aaaa", "2024-01-01T00:00:00.000Z")

    stored, created = registry.register_version(first, code_version="c1")
    again, created_again = registry.register_version(
        _ref("aaaa", "2024-02-01T00:00:00.000Z", key="raw/churn/copy.csv"), code_version="c2"
    )

    assert (stored, created) == (first, True)
    assert created_again is False
    assert again == first.model_copy(update={"already_ingested": True})
    assert registry.get_version("churn", "aaaa") == first
    assert registry.get_version("churn", "bbbb") is None


def test_versions_are_listed_oldest_first_and_only_for_their_dataset(cloud: Cloud) -> None:
    registry = DatasetRegistry(cloud.table)
    for version, created_at in [("cccc", "2024-03"), ("aaaa", "2024-01"), ("bbbb", "2024-02")]:
        registry.register_version(_ref(version, created_at), code_version="c1")
    registry.freeze_contract(
        "churn", "{}", source_key="raw/churn/a.csv", created_at="2024-01", code_version="c1"
    )
    registry.register_version(
        _ref("zzzz", "2023-12").model_copy(update={"dataset": "sales"}), code_version="c1"
    )

    versions = list_dataset_versions("churn")

    assert [v.data_version for v in versions] == ["aaaa", "bbbb", "cccc"]
    assert versions[0].source == _ref("aaaa", "2024-01").source


def test_the_first_contract_frozen_wins(cloud: Cloud) -> None:
    registry = DatasetRegistry(cloud.table)

    first = registry.freeze_contract(
        "churn", '{"a": 1}', source_key="raw/churn/1.csv", created_at="t1", code_version="c1"
    )
    second = registry.freeze_contract(
        "churn", '{"b": 2}', source_key="raw/churn/2.csv", created_at="t2", code_version="c1"
    )

    assert first == second == '{"a": 1}'
    assert registry.get_contract("churn") == '{"a": 1}'
    assert registry.get_contract("sales") is None


def test_a_missing_table_is_a_registry_error(cloud: Cloud) -> None:
    with pytest.raises(RegistryError, match="ResourceNotFoundException"):
        DatasetRegistry("no-such-table").list_versions("churn")
