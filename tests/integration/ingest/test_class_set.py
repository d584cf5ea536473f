"""The class set of a classification target is part of the data contract: frozen at the
first good version, so a later drop whose labels differ (`"Yes "` beside `yes`) cannot turn a
two-class dataset into a three-class one and poison every append-mode training after it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from functions.adapters.datasets import list_dataset_versions
from functions.common.config.loading import deployed_config
from functions.common.layout import quarantine_key
from functions.ml.errors import DataValidationError
from functions.ml.sample_data import TARGET, churn_frame, encode
from tests.integration.ingest import test_handler
from tests.integration.ingest.test_handler import Drop, invoke

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

REPO = Path(__file__).resolve().parents[3]
drop = test_handler.drop


def _with_variants(seed: int, variants: dict[str, int]) -> bytes:
    """A churn drop where the first `count` rows of class "yes" are relabelled `variant`."""
    frame = churn_frame(800, seed=seed, first_id=seed * 10_000)
    yes = frame.index[frame[TARGET] == "yes"]
    start = 0
    for variant, count in variants.items():
        frame.loc[yes[start : start + count], TARGET] = variant
        start += count
    return encode(frame)


@pytest.fixture
def normalize_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repo config with `dataset.normalize_labels = true`."""
    text = (REPO / "mlops.toml").read_text()
    text = text.replace("[dataset]\n", "[dataset]\nnormalize_labels = true\n", 1)
    config = tmp_path / "mlops.toml"
    config.write_text(text)
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    deployed_config.cache_clear()


def test_a_label_variant_after_the_first_version_is_quarantined_as_unknown_class(
    cloud: Cloud, drop: Drop
) -> None:
    first = invoke(drop("raw/churn/first.csv", encode(churn_frame(800, seed=21))))
    event = drop("raw/churn/variants.csv", _with_variants(22, {"Yes ": 30, "YES": 4}))

    with pytest.raises(DataValidationError) as caught:
        invoke(event)

    assert caught.value.code.value == "unknown_class"
    assert caught.value.details["unknown"] == {"Yes": 30, "YES": 4}
    assert caught.value.details["classes"] == ["no", "yes"]
    assert "'Yes' (30 rows)" in str(caught.value) and "'YES' (4 rows)" in str(caught.value)
    assert "dataset.normalize_labels" in str(caught.value)
    assert [v.data_version for v in list_dataset_versions("churn")] == [first["data_version"]]
    assert quarantine_key("raw/churn/variants.csv") in cloud.keys("quarantine/")


def test_case_and_whitespace_variants_are_normalised_where_the_config_allows_it(
    cloud: Cloud, drop: Drop, normalize_labels: None
) -> None:
    invoke(drop("raw/churn/first.csv", encode(churn_frame(800, seed=21))))

    second = invoke(drop("raw/churn/variants.csv", _with_variants(22, {"Yes ": 30, "YES": 4})))

    manifest = json.loads(cloud.body(second["manifest_key"]))
    assert manifest["cleaning"]["labels_normalised"] == [
        {"from": "YES", "to": "yes", "rows": 4},
        {"from": "Yes", "to": "yes", "rows": 30},
    ]
    assert {v["value"] for v in manifest["profile"][TARGET]["top_values"]} == {"no", "yes"}
    assert len(list_dataset_versions("churn")) == 2


def test_a_class_never_seen_is_quarantined_even_with_normalisation(
    cloud: Cloud, drop: Drop, normalize_labels: None
) -> None:
    invoke(drop("raw/churn/first.csv", encode(churn_frame(800, seed=21))))

    with pytest.raises(DataValidationError) as caught:
        invoke(drop("raw/churn/maybe.csv", _with_variants(22, {"maybe": 12, "Yes ": 5})))

    assert caught.value.code.value == "unknown_class"
    assert caught.value.details["unknown"] == {"maybe": 12}
    assert len(list_dataset_versions("churn")) == 1
