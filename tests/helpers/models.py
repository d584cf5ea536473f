"""Real models for the tests: a logistic regression fitted on churn rows with functions.ml and
exported to ONNX, as the train stage does. No AWS: unit tests use them too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from functions.common.config.dataset import FeatureType, Task
from functions.common.config.loading import load_config
from functions.common.config.training import ModelConfig
from functions.ml.onnx_model import Signature, export_onnx
from functions.ml.sample_data import CATEGORICAL_FEATURES, NUMERIC_FEATURES, churn_frame
from functions.ml.training import fit_model
from tests.helpers import REPO

MODEL = "churn"
FEATURES = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
CHURN_SCHEMA = {
    **dict.fromkeys(NUMERIC_FEATURES, FeatureType.NUMERIC),
    **dict.fromkeys(CATEGORICAL_FEATURES, FeatureType.CATEGORICAL),
}


@dataclass(frozen=True)
class Trained:
    """A model's ONNX bytes and signature, and feature rows to ask it about."""

    onnx: bytes
    signature: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def row(self) -> dict[str, Any]:
        return self.rows[0]


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The feature columns of `frame` as JSON-ready rows, a missing value as None."""
    return [
        {k: (None if v != v else v) for k, v in row.items()}
        for row in frame[FEATURES].astype(object).to_dict("records")
    ]


def fit_and_export(
    train: pd.DataFrame,
    schema: Mapping[str, FeatureType],
    model: ModelConfig | None = None,
    *,
    target: str = "churned",
    task: Task = Task.CLASSIFICATION,
    estimator: str = "logistic_regression",
) -> tuple[Pipeline, bytes, Signature]:
    """`estimator` (`model`'s params) fitted on `train` to predict `target`, as the train stage
    fits it: the fitted pipeline, and its ONNX export and signature."""
    fitted = fit_model(
        train,
        target=target,
        task=task,
        schema=schema,
        model=model or ModelConfig(),
        estimator=estimator,
    )
    onnx, signature = export_onnx(
        fitted.pipeline, schema=schema, target=target, task=task, train=train
    )
    return fitted.pipeline, onnx, signature


def fit_churn(train: pd.DataFrame, params: dict[str, Any]) -> tuple[bytes, Signature]:
    """A logistic regression with `params` fitted on `train`, exported to ONNX."""
    schema = load_config(REPO / "mlops.toml").dataset.features
    assert schema is not None
    _, onnx, signature = fit_and_export(train, schema, ModelConfig(params=params))
    return onnx, signature


def trained_churn(
    size: int, *, seed: int, c: float = 1.0, asked: pd.DataFrame | None = None
) -> Trained:
    """A model fitted on `size` churn rows drawn with `seed`, with regularization `c`; its rows
    are `asked` (default: the first training row)."""
    frame = churn_frame(size, seed=seed, duplicate_share=0.0)
    onnx, signature = fit_churn(frame, {"C": c, "max_iter": 1000})
    return Trained(onnx, signature.to_dict(), records(frame.iloc[:1] if asked is None else asked))
