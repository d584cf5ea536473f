"""Threshold analysis of a binary classifier: precision, recall and F1 of the positive class
when a row is called positive at a probability of at least each threshold."""

from __future__ import annotations

from typing import Any

import numpy as np

from functions.ml.insight.scores import Scores

THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(1, 20))
"""0.05, 0.10, ..., 0.95."""


def threshold_table(scores: Scores) -> list[dict[str, Any]]:
    """One row per threshold of `THRESHOLDS`; precision is 0 where nothing is called
    positive (scikit-learn's `zero_division=0`)."""
    if scores.probabilities is None:
        raise ValueError("threshold analysis needs a classifier's probabilities")
    probability = scores.probabilities[:, 1]
    positive = scores.positive
    table = []
    for threshold in THRESHOLDS:
        called = probability >= threshold
        hits = int(np.sum(called & positive))
        precision = hits / int(called.sum()) if called.any() else 0.0
        recall = hits / int(positive.sum()) if positive.any() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table.append({"threshold": threshold, "precision": precision, "recall": recall, "f1": f1})
    return table
