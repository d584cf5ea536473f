"""Which dataset versions a run trains on: `[dataset] mode` and retrain requests."""

from __future__ import annotations

import pytest

from functions.common.config.dataset import DatasetMode
from functions.common.contracts import SourceObject
from functions.train.logic import DataVersionNotFoundError, training_versions
from tests.helpers.datasets import dataset_ref

VERSIONS = [
    dataset_ref(name, SourceObject(bucket="b", key=f"raw/churn/{name}.csv"), created_at=created_at)
    for name, created_at in [
        ("aaa", "2026-11-01T00:00:00.000Z"),
        ("bbb", "2026-11-02T00:00:00.000Z"),
        ("ccc", "2026-11-03T00:00:00.000Z"),
    ]
]


def test_append_trains_on_every_version_up_to_the_trigger() -> None:
    trigger, versions = training_versions(VERSIONS, DatasetMode.APPEND, "bbb")
    assert trigger.data_version == "bbb"
    assert [v.data_version for v in versions] == ["aaa", "bbb"]


def test_replace_trains_on_the_trigger_only() -> None:
    trigger, versions = training_versions(VERSIONS, DatasetMode.REPLACE, "bbb")
    assert [v.data_version for v in versions] == ["bbb"]


def test_without_a_version_the_newest_one_triggers() -> None:
    trigger, versions = training_versions(VERSIONS, DatasetMode.APPEND, None)
    assert trigger.data_version == "ccc"
    assert len(versions) == 3


def test_unknown_version_names_the_latest_ones() -> None:
    with pytest.raises(DataVersionNotFoundError, match=r"'zzz' is not registered.*ccc"):
        training_versions(VERSIONS, DatasetMode.APPEND, "zzz")


def test_no_version_yet_says_to_drop_a_file() -> None:
    with pytest.raises(DataVersionNotFoundError, match="drop a file first"):
        training_versions([], DatasetMode.APPEND, None)
