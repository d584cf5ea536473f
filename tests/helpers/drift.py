"""Reference profiles of churn training rows with stand-in predictions (churn classes or
monthly charges), as the drift check reads them, and live windows as the columns it compares.
No AWS: unit tests use them too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from functions.common.config.dataset import FeatureType, Task
from functions.common.contracts import ModelVersion
from functions.common.layout import version_prefix
from functions.ml.onnx_input import Prediction
from functions.ml.reference_profile import reference_profile
from tests.helpers.models import CHURN_SCHEMA


def monitored_version(model: str, version: int, metrics: Mapping[str, float]) -> ModelVersion:
    """The registry record of a promoted `version` of `model` whose reference profile is at
    models/<model>/<version>/ (the drift check reads nothing else of it)."""
    prefix = version_prefix(model, version)
    return ModelVersion(
        model_name=model,
        version=version,
        prefix=prefix,
        onnx_key=prefix + "model.onnx",
        onnx_sha256="0" * 64,
        run_id="20261127T000000Z-abcdef",
        data_version="v1",
        data_versions=["v1"],
        metrics=dict(metrics),
        created_at="2026-11-27T00:00:00.000Z",
        model_card_key=prefix + "model_card.html",
        promoted=True,
    )


def churn_predictions(count: int) -> Prediction:
    """`count` churn predictions whose P(yes) is drawn uniformly below 0.8 (seed 0)."""
    p_yes = np.random.default_rng(0).random(count) * 0.8
    return Prediction(
        labels=np.where(p_yes >= 0.5, "yes", "no"),
        probabilities=np.column_stack([1 - p_yes, p_yes]),
        classes=("no", "yes"),
    )


def churn_reference(
    train: pd.DataFrame,
    schema: Mapping[str, FeatureType] = CHURN_SCHEMA,
    *,
    sample_rows: int = 2_000,
    predictions: int = 500,
    calibrated: bool = False,
) -> dict[str, Any]:
    """The reference profile of `train` for a `churned` classifier, with `predictions` stand-in
    predictions and `sample_rows` rows kept (seed 1). `calibrated`: with held-out labels drawn
    from the predictions' own P(yes) (seed 2), so the profile carries a calibration for the
    label-free estimate and the stand-in model is calibrated by construction."""
    predicted = churn_predictions(predictions)
    labels = None
    if calibrated:
        assert predicted.probabilities is not None
        drawn = np.random.default_rng(2).random(predictions) < predicted.probabilities[:, 1]
        labels = np.where(drawn, "yes", "no")
    return reference_profile(
        train,
        schema=schema,
        target="churned",
        predictions=predicted,
        task=Task.CLASSIFICATION,
        sample_rows=sample_rows,
        seed=1,
        held_out_labels=labels,
    )


def charges_reference(
    train: pd.DataFrame,
    predicted: np.ndarray,
    schema: Mapping[str, FeatureType] = CHURN_SCHEMA,
    *,
    sample_rows: int,
    seed: int,
    **options: int,
) -> dict[str, Any]:
    """The reference profile of `train` for a `monthly_charges` regressor that predicted
    `predicted`, with `sample_rows` rows kept (`options`: more of `reference_profile`'s)."""
    return reference_profile(
        train,
        schema=schema,
        target="monthly_charges",
        predictions=Prediction(labels=predicted, probabilities=None),
        task=Task.REGRESSION,
        sample_rows=sample_rows,
        seed=seed,
        **options,
    )


def window_columns(
    frame: pd.DataFrame, schema: Mapping[str, FeatureType] = CHURN_SCHEMA
) -> dict[str, np.ndarray]:
    """The `schema` columns of `frame` as the drift check reads a window: numeric ones as
    float64, the others as objects."""
    return {
        name: frame[name].to_numpy(dtype=np.float64)
        if kind is FeatureType.NUMERIC
        else frame[name].to_numpy(dtype=object)
        for name, kind in schema.items()
    }
