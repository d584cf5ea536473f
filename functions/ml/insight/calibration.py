"""Calibration: the Brier score and a reliability curve of a classifier's probabilities on the
held-out rows. Binary: the positive class's probability against the outcome (Brier: mean
squared difference). Multiclass: the top label's confidence against whether the top label is
right (the curve), and the multiclass Brier score, the mean over rows of the squared distance
between the probability vector and the one-hot true label (Brier's original definition)."""

from __future__ import annotations

from typing import Any

import numpy as np

from functions.ml.insight.scores import BINARY, Scores

CURVE_BINS = 10
"""Equal-width bins of predicted probability on [0, 1]; empty bins are left out."""


def calibration(scores: Scores, method: str | None) -> dict[str, Any]:
    """`{"brier", "method", "curve": [{mean_predicted, fraction_positive, rows}]}`; `method`
    is the calibration the model was trained with (`[model] calibrate`), None for none."""
    probabilities = scores.probabilities
    if probabilities is None:
        raise ValueError("calibration needs a classifier's probabilities")
    if scores.kind == BINARY:
        confidence = probabilities[:, 1]
        outcome = scores.positive.astype(np.float64)
        brier = float(np.mean((confidence - outcome) ** 2))
    else:
        truth = np.asarray(scores.y_true).astype(str)
        onehot = (truth[:, None] == np.asarray(scores.classes, dtype=str)[None, :]).astype(float)
        brier = float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))
        confidence = probabilities.max(axis=1)
        top = np.asarray(scores.classes, dtype=str)[probabilities.argmax(axis=1)]
        outcome = (top == truth).astype(np.float64)
    return {"brier": brier, "method": method, "curve": reliability_curve(confidence, outcome)}


def reliability_curve(confidence: np.ndarray, outcome: np.ndarray) -> list[dict[str, Any]]:
    """Per non-empty bin of `confidence`: its mean, the share of positive `outcome`s, rows."""
    index = np.clip((confidence * CURVE_BINS).astype(int), 0, CURVE_BINS - 1)
    curve = []
    for bin_ in range(CURVE_BINS):
        mask = index == bin_
        rows = int(mask.sum())
        if rows:
            curve.append(
                {
                    "mean_predicted": float(confidence[mask].mean()),
                    "fraction_positive": float(outcome[mask].mean()),
                    "rows": rows,
                }
            )
    return curve
