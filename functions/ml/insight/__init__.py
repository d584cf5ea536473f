"""Model insight on the held-out rows: where a model fails (slices), whether it treats groups
alike (fairness), whether its probabilities can be trusted (calibration) and what each
decision threshold buys (thresholds), as data for the model card (`model_insight`).

Pure: numpy, pandas, scikit-learn and fairlearn (imported where fairness is measured); no AWS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from functions.common.config.dataset import FeatureType, Task
from functions.ml.insight.calibration import calibration
from functions.ml.insight.fairness import fairness_table
from functions.ml.insight.groups import Privacy
from functions.ml.insight.scores import BINARY, Scores
from functions.ml.insight.slices import slice_table
from functions.ml.insight.thresholds import threshold_table

__all__ = ["InsightSettings", "Privacy", "Scores", "model_insight"]


@dataclass(frozen=True)
class InsightSettings:
    """What to measure: `[model_card]`, `[dataset] fairness_attributes` and the privacy rules
    (`[dataset] sensitive`, its salt, `min_slice_rows`)."""

    slice_features: Sequence[str] | None = None
    """None: every categorical feature of the schema."""
    quantile_feature: str | None = None
    quantile_bins: int = 5
    fairness_attributes: Sequence[str] = ()
    privacy: Privacy = field(default_factory=Privacy)


def model_insight(
    holdout: pd.DataFrame,
    scores: Scores,
    *,
    schema: Mapping[str, FeatureType],
    settings: InsightSettings,
    calibration_method: str | None = None,
) -> dict[str, Any]:
    """One model's insight on the held-out rows `holdout` (`scores`: its predictions on them):
    `{"task", "metric", "slices", "fairness", "calibration", "thresholds"}`. `fairness` is
    None for a regressor, a multiclass classifier or no fairness attribute; `calibration` is
    None for a regressor; `thresholds` is None unless the classifier is binary."""
    if scores.rows != len(holdout):
        raise ValueError(f"{scores.rows} predictions for {len(holdout)} held-out rows")
    features = (
        list(settings.slice_features)
        if settings.slice_features is not None
        else [name for name, kind in schema.items() if FeatureType(kind) is FeatureType.CATEGORICAL]
    )
    named = [*features, *filter(None, [settings.quantile_feature])]
    absent = [name for name in named if name not in holdout.columns]
    if absent:
        raise ValueError(
            f"model_card names column(s) not in the held-out rows: {', '.join(absent)}"
        )
    classifier = scores.task is Task.CLASSIFICATION
    binary = scores.kind == BINARY
    return {
        "task": scores.kind,
        "metric": scores.metric,
        "slices": slice_table(
            holdout,
            scores,
            features=features,
            quantile_feature=settings.quantile_feature,
            quantile_bins=settings.quantile_bins,
            privacy=settings.privacy,
        ),
        "fairness": fairness_table(
            holdout, scores, attributes=settings.fairness_attributes, privacy=settings.privacy
        )
        if binary and settings.fairness_attributes
        else None,
        "calibration": calibration(scores, calibration_method) if classifier else None,
        "thresholds": threshold_table(scores) if binary else None,
    }


def scores_of(
    task: Task,
    y_true: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray | None,
    classes: Sequence[str] | None,
) -> Scores:
    """`Scores` from a model's outputs (classes None for a regressor)."""
    return Scores(
        task=Task(task),
        y_true=np.asarray(y_true),
        labels=np.asarray(labels),
        probabilities=None if probabilities is None else np.asarray(probabilities, np.float64),
        classes=[str(c) for c in classes or ()],
    )
