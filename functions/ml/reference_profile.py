"""The reference profile of a model: what its training data and predictions looked like, stored
with the model (`reference_profile.json`) so that monitoring compares live traffic against it.

Format (JSON; every number finite, missing values `null`):

```
{
  "format_version": 2,
  "task": "classification" | "regression",
  "rows": <training rows>,
  "bins": <bins requested>,
  "seed": <sampling seed>,
  "features": {
    "<numeric column>": {
      "type": "numeric", "rows", "nulls", "null_share", "min", "max", "mean", "std",
      "edges": [e0, ..., ek],      # quantiles 0, 1/bins, ..., 1 of the present values, deduped
      "counts": [c0, ..., ck-1]    # present values per bin; sum(counts) + nulls == rows
    },
    "<categorical column>": {
      "type": "categorical", "rows", "nulls", "null_share",
      "counts": {"<category>": n, ..., "": <missing>},   # "" is the missing value
      "shares": {"<category>": n / rows, ...},
      "other": <rows in categories beyond the 1000 most frequent, counted in no key>
    }
  },
  "target": <same shape as a feature: categorical for classification, numeric for regression>,
  "predictions": {                # the model's predictions on the held-out rows
    "rows": <held-out rows>,
    classification: "classes": [...], "class_shares": {class: share},
                    "mean_probability": {class: mean},
                    "probability_histograms": {class: {"edges": [0, 1/bins, ..., 1], "counts"}}
    regression:     "mean", "std", "quantiles": {"q": [0, 1/bins, ..., 1], "values": [...]},
                    "edges", "counts"   # as for a numeric feature
  },
  "sample": {"rows": n, "columns": [...], "records": [{column: value}, ...]},
  "importance": {                 # format 2; absent in format 1 profiles
    "method": "permutation", "metric": <primary metric>, "rows", "repeats", "seed",
    "features": {"<column>": <mean metric loss when shuffled>}, "std": {...},
    "critical": [<columns carrying the top half of the importance>], "critical_share": 0.5
  },
  "calibration": {                # format 3, classifiers; absent before and for regression
    "method": "isotonic", "rows": <held-out rows fitted on (a seeded sample of at most 20000)>,
    "classes": [...], "positive_class": <binary: the second class; multiclass: null>,
    "maps": {"<class>": {"x": [...], "y": [...]}},   # probability -> observed frequency
    "reference": {"accuracy", "f1_macro", binary: "f1", "roc_auc"}   # realized, held out
  }
}
```

A format 1 profile (no `importance`) stays readable: the drift check then knows no importance
and judges by the configured `critical_features` and the share rule, and says so.
A profile without `calibration` (format 1 or 2, or a regression model) gives no label-free
performance estimate: the drift check reports the estimate as unavailable
(`functions.ml.drift.estimate`).

Binning (monitoring must bin live values exactly so): bin `i` holds the values `v` with
`edges[i] <= v < edges[i + 1]`, except that the first bin extends down to -inf and the last
bin up to +inf (so out-of-range live values land in the outer bins):
`numpy.searchsorted(edges[1:-1], v, side="right")`. A column with a single distinct value has
edges `[v, v]` and one bin; a column without any finite value has no edges and no bins.
NaN / missing values are counted in `nulls`, never in a bin.
The sample is a seeded random choice of at most `sample_rows` training rows (features and
target), for exact tests on small windows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from functions.common import formats
from functions.common.config.dataset import FeatureType, Task
from functions.common.sensitive import hash_value
from functions.ml.drift.estimate import fit_calibration
from functions.ml.features import model_frame, target_array
from functions.ml.onnx_input import MISSING_CATEGORY, Prediction

MAX_CATEGORIES = 1_000


def bin_index(edges: np.ndarray | list[float], values: np.ndarray) -> np.ndarray:
    """The bin of each (non-missing) value against profile edges (see the module docstring)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64)[1:-1], values, side="right")


def numeric_profile(values: np.ndarray, bins: int) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    nulls = len(values) - len(present)
    profile: dict[str, Any] = {
        "type": FeatureType.NUMERIC.value,
        "rows": len(values),
        "nulls": nulls,
        "null_share": nulls / len(values) if len(values) else 0.0,
    }
    finite = present[np.isfinite(present)]
    if not len(finite):
        empty: dict[str, Any] = {
            "min": None,
            "max": None,
            "mean": None,
            "std": None,
            "edges": [],
            "counts": [],
        }
        return {**profile, **empty}
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) == 1:
        edges = np.repeat(edges, 2)
    # +-inf (if any) lands in the outer bins; the statistics describe the finite values.
    counts = np.bincount(bin_index(edges, present), minlength=len(edges) - 1)
    return {
        **profile,
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
        "edges": [float(edge) for edge in edges],
        "counts": [int(count) for count in counts],
    }


def categorical_profile(values: np.ndarray) -> dict[str, Any]:
    """`values` as `model_frame` gives them (`""` for missing)."""
    rows = len(values)
    labels, counts = np.unique(np.asarray(values, dtype=object).astype(str), return_counts=True)
    order = np.lexsort((labels, -counts))  # most frequent first, ties by name
    kept = order[:MAX_CATEGORIES]
    table = {str(labels[i]): int(counts[i]) for i in kept}
    nulls = int(counts[labels == MISSING_CATEGORY].sum())
    if nulls and MISSING_CATEGORY not in table:
        table[MISSING_CATEGORY] = nulls
    other = rows - sum(table.values())
    return {
        "type": FeatureType.CATEGORICAL.value,
        "rows": rows,
        "nulls": nulls,
        "null_share": nulls / rows if rows else 0.0,
        "counts": table,
        "shares": {label: count / rows for label, count in table.items()},
        "other": other,
    }


def sensitive_view(
    frame: pd.DataFrame,
    schema: Mapping[str, FeatureType],
    sensitive: Mapping[str, str],
    salt: str = "",
) -> tuple[pd.DataFrame, dict[str, FeatureType]]:
    """The training rows and schema as monitoring may see them (`[dataset] sensitive`): a
    `drop` column is left out, a `hash` column becomes the categorical of its values' hashes
    (`functions.common.sensitive.hash_value` of each value as the model sees it, exactly what
    capture stores; missing stays missing). The profile (its row sample included) then holds
    no raw value of either."""
    view = frame.drop(columns=[c for c, mode in sensitive.items() if mode == "drop" and c in frame])
    types = {name: kind for name, kind in schema.items() if sensitive.get(name) != "drop"}
    hashed = {
        name: schema[name] for name, mode in sensitive.items() if mode == "hash" and name in schema
    }
    if hashed:
        seen = model_frame(view, hashed)
        for name in hashed:
            view[name] = seen[name].map(lambda value: hash_value(value, salt))
            types[name] = FeatureType.CATEGORICAL
    return view, types


def reference_profile(
    train: pd.DataFrame,
    *,
    schema: Mapping[str, FeatureType],
    target: str,
    predictions: Prediction,
    task: Task,
    sample_rows: int,
    seed: int,
    bins: int = 10,
    importance: Mapping[str, Any] | None = None,
    held_out_labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """The reference profile of the training split and the held-out predictions (format in the
    module docstring), with the served model's `importance`
    (`functions.ml.importance.permutation_importances`) when given, and, for a classifier
    whose held-out rows' true labels (`held_out_labels`, in `predictions`' row order) are
    given, the calibration of its probabilities (`functions.ml.drift.estimate`). JSON-safe:
    `json.dumps(profile, allow_nan=False)` works."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    task = Task(task)
    features = model_frame(train, schema)
    profiles = {
        name: numeric_profile(features[name].to_numpy(), bins)
        if FeatureType(kind) is FeatureType.NUMERIC
        else categorical_profile(features[name].to_numpy())
        for name, kind in schema.items()
    }
    y = target_array(train, target, task)
    profile = {
        formats.FIELD: formats.current(formats.REFERENCE_PROFILE),
        "task": task.value,
        "rows": len(train),
        "bins": bins,
        "seed": seed,
        "features": profiles,
        "target": categorical_profile(y)
        if task is Task.CLASSIFICATION
        else numeric_profile(y, bins),
        "predictions": _prediction_profile(predictions, bins),
        "sample": _sample(features.assign(**{target: y}), sample_rows, seed),
    }
    if importance is not None:
        profile["importance"] = dict(importance)
    if held_out_labels is not None and predictions.probabilities is not None:
        classes = predictions.classes or range(predictions.probabilities.shape[1])
        calibration = fit_calibration(
            predictions.probabilities, list(classes), held_out_labels, seed=seed
        )
        if calibration is not None:
            profile["calibration"] = calibration
    return profile


def _prediction_profile(predictions: Prediction, bins: int) -> dict[str, Any]:
    rows = len(predictions.labels)
    if predictions.probabilities is None:
        values = np.asarray(predictions.labels, dtype=np.float64)
        profile = numeric_profile(values, bins)
        levels = np.linspace(0.0, 1.0, bins + 1)
        quantiles = np.quantile(values, levels) if rows else np.array([])
        return {
            "rows": rows,
            "mean": profile.get("mean"),
            "std": profile.get("std"),
            "quantiles": {"q": _floats(levels), "values": _floats(quantiles)},
            "edges": profile.get("edges", []),
            "counts": profile.get("counts", []),
        }
    classes = list(predictions.classes or range(predictions.probabilities.shape[1]))
    labels = np.asarray(predictions.labels).astype(str)
    edges = np.linspace(0.0, 1.0, bins + 1)
    histograms = {}
    for column, label in enumerate(classes):
        counts = np.bincount(bin_index(edges, predictions.probabilities[:, column]), minlength=bins)
        histograms[str(label)] = {"edges": _floats(edges), "counts": [int(c) for c in counts]}
    return {
        "rows": rows,
        "classes": [str(label) for label in classes],
        "class_shares": {
            str(label): float(np.mean(labels == str(label))) if rows else 0.0 for label in classes
        },
        "mean_probability": {
            str(label): float(predictions.probabilities[:, column].mean()) if rows else 0.0
            for column, label in enumerate(classes)
        },
        "probability_histograms": histograms,
    }


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> dict[str, Any]:
    count = min(rows, len(frame))
    picked = np.sort(np.random.default_rng(seed).choice(len(frame), size=count, replace=False))
    columns = [str(name) for name in frame.columns]
    arrays = [frame[name].to_numpy() for name in frame.columns]
    records = [
        {name: _json_value(array[i]) for name, array in zip(columns, arrays, strict=True)}
        for i in picked
    ]
    return {"rows": count, "columns": columns, "records": records}


def _json_value(value: Any) -> Any:
    """A JSON-safe scalar: NaN (numeric missing) and `""` (categorical missing) -> None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value == MISSING_CATEGORY:
        return None
    return value


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]
