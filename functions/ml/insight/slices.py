"""Slices: the task's primary metric on every group of held-out rows that shares a value of a
categorical feature (or a quantile bin of a numeric one), beside its value on all the rows,
worst first. A slice below the minimum size is suppressed (counted, not listed); one below
three times it is flagged `small`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from functions.ml.insight.groups import Privacy, category_labels, quantile_labels
from functions.ml.insight.scores import Scores

SMALL_FACTOR = 3
"""A listed slice with fewer than `SMALL_FACTOR * min_rows` rows is flagged `small`."""


def slice_table(
    holdout: pd.DataFrame,
    scores: Scores,
    *,
    features: Sequence[str],
    quantile_feature: str | None,
    quantile_bins: int,
    privacy: Privacy,
) -> dict[str, Any]:
    """The slices of `features` (one per value) and of `quantile_feature` (one per bin),
    worst first by `scores.metric` (direction-aware; ties: larger slices first). A `drop`
    sensitive column has no slices; a `hash` one is labelled by hashes, and its quantile bins
    (which would show raw values as bin edges) are not measured."""
    overall = scores.value(np.ones(scores.rows, dtype=bool))
    grouped: list[tuple[str, str, np.ndarray]] = []
    for feature in features:
        if privacy.mode(feature) == "drop":
            continue
        grouped.append((feature, "category", category_labels(holdout[feature], feature, privacy)))
    if quantile_feature is not None and privacy.mode(quantile_feature) is None:
        labels = quantile_labels(holdout[quantile_feature], quantile_bins)
        grouped.append((quantile_feature, "quantile", labels))
    rows: list[dict[str, Any]] = []
    suppressed = 0
    for feature, kind, labels in grouped:
        for label in sorted(set(labels)):
            mask = labels == label
            size = int(mask.sum())
            if size < privacy.min_rows:
                suppressed += 1
                continue
            rows.append(
                {
                    "feature": feature,
                    "kind": kind,
                    "slice": str(label),
                    "rows": size,
                    "value": scores.value(mask),
                    "overall": overall,
                    "flag": "small" if size < SMALL_FACTOR * privacy.min_rows else None,
                }
            )
    sign = 1.0 if scores.greater_is_better else -1.0
    rows.sort(key=lambda row: (sign * row["value"], -row["rows"], row["feature"], row["slice"]))
    return {"min_rows": privacy.min_rows, "suppressed": suppressed, "rows": rows}
