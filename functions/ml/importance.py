"""Permutation importance of a fitted pipeline on held-out rows: how much the task's primary
metric (roc_auc binary, f1_macro multiclass, rmse regression) worsens when one feature's values
are shuffled. Stored in the reference profile, it tells the drift check which features the
served model relies on (`functions.ml.drift.verdict.critical_by_importance`).

Bounded for the train function's time and memory: at most `MAX_ROWS` held-out rows (a seeded
random subset) and `REPEATS` shuffles per feature, one process. The cost is
`features x REPEATS` predictions of at most `MAX_ROWS` rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from functions.common.config.dataset import FeatureType, Task
from functions.ml.drift.verdict import CRITICAL_IMPORTANCE_SHARE, critical_by_importance
from functions.ml.features import model_frame, target_array
from functions.ml.metrics import primary_metric
from functions.ml.training import SCORERS

MAX_ROWS = 1_000
REPEATS = 3


def permutation_importances(
    pipeline: Pipeline,
    rows: pd.DataFrame,
    *,
    target: str,
    task: Task,
    schema: Mapping[str, FeatureType],
    seed: int,
    max_rows: int = MAX_ROWS,
    repeats: int = REPEATS,
) -> dict[str, Any] | None:
    """The importance of each feature of `schema` on (at most `max_rows` of) `rows`:
    `{"method": "permutation", "metric", "rows", "repeats", "seed", "features": {name: mean
    metric loss}, "std": {name: std}, "critical": [...], "critical_share": 0.5}`. A loss is in
    the metric's own units and positive when shuffling the feature hurts; `critical` are the
    features carrying the top half of the positive importance, most important first. None
    when the rows hold a single class (no classification metric is defined on them)."""
    task = Task(task)
    if len(rows) > max_rows:
        rows = rows.sample(n=max_rows, random_state=seed)
    features = model_frame(rows, schema)
    y = target_array(rows, target, task)
    classes = len(np.unique(y)) if task is Task.CLASSIFICATION else 0
    if task is Task.CLASSIFICATION and classes < 2:
        return None
    metric = primary_metric(task, classes)
    result = permutation_importance(
        pipeline,
        features,
        y,
        scoring=SCORERS[metric],
        n_repeats=repeats,
        random_state=seed,
        n_jobs=1,
    )
    means = {name: float(v) for name, v in zip(schema, result.importances_mean, strict=True)}
    stds = {name: float(v) for name, v in zip(schema, result.importances_std, strict=True)}
    return {
        "method": "permutation",
        "metric": metric,
        "rows": len(rows),
        "repeats": repeats,
        "seed": seed,
        "features": means,
        "std": stds,
        "critical": critical_by_importance(means),
        "critical_share": CRITICAL_IMPORTANCE_SHARE,
    }
