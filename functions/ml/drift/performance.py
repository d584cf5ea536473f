"""Live performance: the serving model's metrics on the labelled rows of a window (feedback
labels joined to the captured predictions), against its evaluation metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from functions.ml.drift.columns import Column, as_list, float_or_none, floats
from functions.ml.drift.report import json_safe

LOWER_IS_BETTER = frozenset({"rmse", "mae"})


@dataclass(frozen=True)
class LivePerformance:
    """The serving model's metrics on the labelled rows of a window, against its evaluation
    metrics (`reference`); `changes` are live minus reference, `dropped` the metrics worse by
    more than the tolerance."""

    rows: int
    verdict: Literal["ok", "drop", "insufficient_data"]
    metrics: dict[str, float]
    reference: dict[str, float]
    changes: dict[str, float]
    dropped: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, as `DriftReport.to_dict`."""
        return json_safe(asdict(self))


def live_performance(
    task: str,
    labels: Column,
    predictions: Column,
    *,
    reference_metrics: Mapping[str, float],
    tolerance: float,
    min_rows: int,
) -> LivePerformance:
    """Live metrics from feedback `labels` and the captured `predictions` of the same rows.
    Classification: accuracy and f1_macro (over every class seen in either), comparing classes
    by `class_label` (1, 1.0, "1", True are one class); regression: rmse and mae. Rows missing
    a label or a prediction are left out. Only the metrics in `reference_metrics` are compared:
    a drop is live < reference - tolerance (classification) or live > reference * (1 +
    tolerance) (rmse, mae). Fewer than `min_rows` labelled rows: `insufficient_data`."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    task = str(getattr(task, "value", task))
    if task == "classification":
        rows, metrics = _classification_metrics(labels, predictions)
    elif task == "regression":
        rows, metrics = _regression_metrics(labels, predictions)
    else:
        raise ValueError(f"unknown task {task!r}")
    reference = {name: float(value) for name, value in reference_metrics.items()}
    notes = [f"{len(labels) - rows} row(s) without a label or a prediction left out"]
    notes = notes if rows < len(labels) else []
    if rows < min_rows:
        notes.append(f"{rows} labelled rows < min_rows {min_rows}")
        return LivePerformance(rows, "insufficient_data", metrics, reference, {}, (), tuple(notes))
    compared = [name for name in metrics if name in reference]
    notes += [f"{name} is not measured live" for name in reference if name not in metrics]
    changes = {name: metrics[name] - reference[name] for name in compared}
    dropped = tuple(
        name
        for name in compared
        if (
            metrics[name] > reference[name] * (1 + tolerance)
            if name in LOWER_IS_BETTER
            else metrics[name] < reference[name] - tolerance
        )
    )
    verdict: Literal["ok", "drop"] = "drop" if dropped else "ok"
    return LivePerformance(rows, verdict, metrics, reference, changes, dropped, tuple(notes))


def class_label(value: Any) -> str | None:
    """A class as feedback and predictions are compared: integral numbers, their text and
    booleans (also "true" / "false") as the integer's text, anything else as `str()`; None,
    NaN and "" are missing (None)."""
    if value is None or isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    text = str(value).strip()
    if not text:
        return None
    if text.lower() in ("true", "false"):
        return "1" if text.lower() == "true" else "0"
    number = float_or_none(text)
    if number is not None and math.isfinite(number) and number.is_integer():
        return str(int(number))
    return text


def _classification_metrics(labels: Column, predictions: Column) -> tuple[int, dict[str, float]]:
    pairs = [
        (label, predicted)
        for label, predicted in zip(
            map(class_label, as_list(labels)), map(class_label, as_list(predictions)), strict=True
        )
        if label is not None and predicted is not None
    ]
    if not pairs:
        return 0, {}
    truth = np.array([label for label, _ in pairs], dtype=object)
    guess = np.array([predicted for _, predicted in pairs], dtype=object)
    f1 = []
    for label in set(truth.tolist()) | set(guess.tolist()):
        actual, predicted = truth == label, guess == label
        true_positives = int(np.sum(actual & predicted))
        f1.append(2 * true_positives / (int(actual.sum()) + int(predicted.sum())))
    return len(pairs), {"accuracy": float(np.mean(truth == guess)), "f1_macro": float(np.mean(f1))}


def _regression_metrics(labels: Column, predictions: Column) -> tuple[int, dict[str, float]]:
    truth, _ = floats(labels)
    guess, _ = floats(predictions)
    kept = np.isfinite(truth) & np.isfinite(guess)
    if not kept.any():
        return 0, {}
    with np.errstate(over="ignore", invalid="ignore"):  # huge values: inf, reported as None
        error = guess[kept] - truth[kept]
        rmse = float(np.sqrt(np.mean(error**2)))
        mae = float(np.mean(np.abs(error)))
    return int(kept.sum()), {"rmse": rmse, "mae": mae}
