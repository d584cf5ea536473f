"""A training run as the train stage returns it, for tests of the stages after it."""

from __future__ import annotations

from typing import Any

from functions.common.contracts import TrainingRun


def training_run(model: str, run_id: str, **fields: Any) -> TrainingRun:
    """The train stage's result for run `run_id` of `model` (a logistic regression on churn
    rows; `fields` override any field), its files under the run's prefix."""
    prefix = f"models/{model}/runs/{run_id}/"
    found: dict[str, Any] = {
        "run_id": run_id,
        "model_name": model,
        "task": "classification",
        "estimator": "logistic_regression",
        "params": {"C": 1.0, "max_iter": 1000},
        "data_version": "d1",
        "data_versions": ["d1"],
        "rows_train": 300,
        "rows_test": 100,
        "run_prefix": prefix,
        "onnx_key": prefix + "model.onnx",
        "onnx_sha256": "0" * 64,
        "holdout_key": prefix + "holdout.parquet",
        "signature_key": prefix + "signature.json",
        "reference_profile_key": prefix + "reference_profile.json",
        "run_record_key": prefix + "run.json",
        "started_at": "2026-01-01T00:00:00.000Z",
        "code_version": "train123",
    }
    return TrainingRun(**{**found, **fields})
