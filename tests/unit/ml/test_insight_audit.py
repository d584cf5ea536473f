"""An audit-only fairness attribute (`[dataset] fairness_attributes`, not a feature) flows from
a drop into the curated data and the held-out rows, and never into the model: with a declared
contract and with one inferred from the first drop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from functions.common.config.dataset import DatasetConfig
from functions.common.config.loading import load_config
from functions.ml.ingestion import IngestionResult, build_manifest
from functions.ml.sample_data import churn_frame, encode
from functions.ml.schema import contract_from_config
from functions.train.logic import Stopwatch, fit_manifests
from tests.helpers import REPO

Ingest = Callable[..., IngestionResult]


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "inferred"])
def test_an_audit_only_attribute_is_curated_held_out_and_never_a_feature(
    ingest: Ingest, tmp_path: Path, declared: bool
) -> None:
    config = load_config(REPO / "mlops.toml")
    config_view = config.model_copy(
        update={
            "dataset": config.dataset.model_copy(
                update={
                    "fairness_attributes": ["gender"],
                    **({} if declared else {"features": None}),
                }
            )
        }
    )
    dataset: DatasetConfig = config_view.dataset
    assert dataset.audit_columns == ["gender"]
    frame = churn_frame(600, seed=3, duplicate_share=0.0).drop(columns="customer_id")
    frame["gender"] = np.random.default_rng(3).choice(["f", "m"], len(frame))

    result = ingest(
        "drop.csv",
        encode(frame, "csv"),
        dataset=dataset,
        contract=contract_from_config(dataset),
        infer=not declared,
    )

    curated = pq.read_table(result.data_path).to_pandas()
    assert "gender" in curated.columns
    assert sorted(curated["gender"].unique()) == ["f", "m"]
    manifest = build_manifest(
        result,
        dataset=dataset.name,
        source={"key": "raw/churn/drop.csv"},
        curated_prefix="curated/churn/v/",
        created_at="2026-12-03T06:00:00.000Z",
        code_version="test",
    )
    assert "gender" in manifest["schema"]
    _, candidate = fit_manifests(curated, [manifest], config=config_view, stopwatch=Stopwatch())
    assert "gender" not in candidate.signature.schema
    assert set(candidate.signature.schema) == set(config.dataset.features or {})
    assert "gender" in candidate.split.test.columns  # the held-out rows keep it
    assert "gender" not in candidate.reference_profile["features"]
