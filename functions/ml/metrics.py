"""Holdout metrics, curves and the confusion matrix of one model's predictions.

Every metric is a finite float, also in edge cases: precision/recall/F1 use `zero_division=0`;
ROC AUC is 0.5 (no better than chance) when the held-out rows hold a single class, with a note;
log loss clips probabilities to [eps, 1 - eps] and gives a class the model does not know
probability 0 (so it is clipped, not an error). Otherwise the values are scikit-learn's.

scikit-learn is imported inside `evaluate_predictions` only: the gate, the model card and the
serving side import `GREATER_IS_BETTER` and `primary_metric` from here without paying for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from functions.common.config.dataset import Task

GREATER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "precision_macro": True,
    "recall_macro": True,
    "f1_macro": True,
    "precision_weighted": True,
    "recall_weighted": True,
    "f1_weighted": True,
    "roc_auc": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}
"""Every metric `evaluate_predictions` reports -> whether a larger value is better."""

TASK_METRICS: dict[Task, tuple[str, ...]] = {
    Task.CLASSIFICATION: (
        "accuracy",
        "f1_macro",
        "f1_weighted",
        "log_loss",
        "precision_macro",
        "precision_weighted",
        "recall_macro",
        "recall_weighted",
        "roc_auc",
    ),
    Task.REGRESSION: ("mae", "r2", "rmse"),
}
"""The metrics `evaluate_predictions` reports for each task (binary and multiclass alike)."""

MAX_CURVE_POINTS = 200
MAX_CURVE_CLASSES = 12
"""Multiclass: one-vs-rest curves for at most this many classes (keeps the card small)."""
_EPS = float(np.finfo(np.float64).eps)


def primary_metric(task: Task, n_classes: int) -> str:
    """roc_auc for binary classification, f1_macro for multiclass, rmse for regression."""
    if Task(task) is Task.REGRESSION:
        return "rmse"
    return "roc_auc" if n_classes <= 2 else "f1_macro"


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    confusion_matrix: dict[str, Any] | None
    """Classification: `labels` and `matrix` (rows: true label, columns: predicted label)."""
    curves: dict[str, Any]
    """Binary: `positive_class`, `roc` {fpr, tpr} and `pr` {precision, recall}, each at most 200
    points; multiclass: `per_class`, a list of one-vs-rest `{class, roc, pr}` (at most
    `MAX_CURVE_CLASSES` classes, the most frequent in the held-out rows, in probability order)
    and `classes_with_curves_of` (how many classes could have one); regression: `residuals`
    {predicted, residual}, a sample of at most 200 rows."""
    rows: int = 0
    notes: list[str] = field(default_factory=list)
    """Metrics that were undefined on these rows and the value reported instead."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_predictions(
    *,
    task: Task,
    y_true: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray | None,
    classes: Sequence[str] | None,
) -> Evaluation:
    """Metrics of `labels` (and `probabilities`, n x classes in `classes` order) against
    `y_true`. Classification: accuracy, precision/recall/F1 (macro and weighted), roc_auc
    (binary: positive class `classes[1]`; multiclass: one-vs-rest, macro), log_loss and the
    confusion matrix. Regression: rmse, mae, r2."""
    if len(y_true) == 0:
        raise ValueError("no rows to evaluate")
    if len(labels) != len(y_true):
        raise ValueError(f"{len(labels)} predictions for {len(y_true)} true values")
    if Task(task) is Task.REGRESSION:
        return _regression(np.asarray(y_true, dtype=np.float64), np.asarray(labels, np.float64))
    if probabilities is None or classes is None:
        raise ValueError("classification metrics need probabilities and classes")
    return _classification(
        np.asarray(y_true).astype(str),
        np.asarray(labels).astype(str),
        np.asarray(probabilities, dtype=np.float64),
        [str(c) for c in classes],
    )


def _classification(
    y_true: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, classes: list[str]
) -> Evaluation:
    from sklearn import metrics as skm

    if probabilities.shape != (len(y_true), len(classes)):
        raise ValueError(
            f"probabilities have shape {probabilities.shape}, expected "
            f"({len(y_true)}, {len(classes)})"
        )
    notes: list[str] = []
    values = {"accuracy": float(skm.accuracy_score(y_true, labels))}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            y_true, labels, average=average, zero_division=0
        )
        values[f"precision_{average}"] = float(precision)
        values[f"recall_{average}"] = float(recall)
        values[f"f1_{average}"] = float(f1)
    values["roc_auc"] = _roc_auc(y_true, probabilities, classes, notes)
    values["log_loss"] = _log_loss(y_true, probabilities, classes)
    extra = sorted((set(y_true) | set(labels)) - set(classes))
    matrix_labels = [*classes, *extra]
    matrix = skm.confusion_matrix(y_true, labels, labels=matrix_labels)
    curves = (_binary_curves if len(classes) == 2 else _per_class_curves)(
        y_true, probabilities, classes
    )
    return Evaluation(
        metrics=_finite(values),
        confusion_matrix={"labels": matrix_labels, "matrix": matrix.tolist()},
        curves=curves,
        rows=len(y_true),
        notes=notes,
    )


def _roc_auc(
    y_true: np.ndarray, probabilities: np.ndarray, classes: list[str], notes: list[str]
) -> float:
    from sklearn.metrics import roc_auc_score

    if len(classes) == 2:
        positive = y_true == classes[1]
        if positive.all() or not positive.any():
            notes.append("roc_auc is undefined with a single class in the held-out rows; 0.5")
            return 0.5
        return float(roc_auc_score(positive, probabilities[:, 1]))
    # One-vs-rest, macro: scikit-learn's multi_class="ovr" when every class is present; a
    # class absent from (or alone in) the held-out rows has no defined AUC and is skipped.
    scores = []
    for index, label in enumerate(classes):
        positive = y_true == label
        if positive.any() and not positive.all():
            scores.append(roc_auc_score(positive, probabilities[:, index]))
    if len(scores) < len(classes):
        notes.append(
            f"roc_auc averages the {len(scores)} of {len(classes)} classes with both positive "
            "and negative held-out rows"
        )
    return float(np.mean(scores)) if scores else 0.5


def _log_loss(y_true: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> float:
    # scikit-learn's formula (rows renormalised, clipped to [eps, 1 - eps]), computed here so
    # that a label the model has never seen counts as probability 0 instead of raising.
    totals = probabilities.sum(axis=1, keepdims=True)
    normalised = np.divide(
        probabilities, totals, out=np.zeros_like(probabilities), where=totals > 0
    )
    index = {label: i for i, label in enumerate(classes)}
    true_probability = np.array(
        [normalised[row, index[y]] if y in index else 0.0 for row, y in enumerate(y_true)]
    )
    clipped = np.clip(true_probability, _EPS, 1 - _EPS)
    return float(-np.mean(np.log(clipped)))


def _binary_curves(
    y_true: np.ndarray, probabilities: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """The positive class's (`classes[1]`) ROC and PR curves; {} when the held-out rows hold
    one class only."""
    curves = _one_vs_rest_curves(y_true == classes[1], probabilities[:, 1])
    return {"positive_class": classes[1], **curves} if curves else {}


def _per_class_curves(
    y_true: np.ndarray, probabilities: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """One-vs-rest ROC and PR curves per class, in probability order: `{"per_class": [{"class",
    "roc", "pr"}], "classes_with_curves_of": n}`. A class absent from (or alone in) the
    held-out rows has no curve; of more than `MAX_CURVE_CLASSES` classes, the most frequent
    in the held-out rows get one."""
    support = {index: int((y_true == label).sum()) for index, label in enumerate(classes)}
    eligible = [index for index, rows in support.items() if 0 < rows < len(y_true)]
    drawn = sorted(sorted(eligible, key=lambda index: -support[index])[:MAX_CURVE_CLASSES])
    per_class = [
        {
            "class": classes[index],
            **_one_vs_rest_curves(y_true == classes[index], probabilities[:, index]),
        }
        for index in drawn
    ]
    return {"per_class": per_class, "classes_with_curves_of": len(eligible)} if per_class else {}


def _one_vs_rest_curves(positive: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """ROC and PR curves of `score` for the rows where `positive` holds, downsampled."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    if positive.all() or not positive.any():
        return {}
    fpr, tpr, _ = roc_curve(positive, score)
    precision, recall, _ = precision_recall_curve(positive, score)
    roc = _downsample(len(fpr))
    pr = _downsample(len(precision))
    return {
        "roc": {"fpr": _floats(fpr[roc]), "tpr": _floats(tpr[roc])},
        "pr": {"precision": _floats(precision[pr]), "recall": _floats(recall[pr])},
    }


def _downsample(length: int, points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of at most `points` evenly spread points, first and last included."""
    if length <= points:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, points)).astype(int))


def _regression(y_true: np.ndarray, predicted: np.ndarray) -> Evaluation:
    from sklearn import metrics as skm

    notes: list[str] = []
    values = {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, predicted))),
        "mae": float(skm.mean_absolute_error(y_true, predicted)),
    }
    if len(y_true) < 2:
        notes.append("r2 is undefined for a single held-out row; 0.0")
        values["r2"] = 0.0
    else:
        values["r2"] = float(skm.r2_score(y_true, predicted))
    sample = _downsample(len(y_true))
    curves = {
        "residuals": {
            "predicted": _floats(predicted[sample]),
            "residual": _floats(y_true[sample] - predicted[sample]),
        }
    }
    return Evaluation(
        metrics=_finite(values), confusion_matrix=None, curves=curves, rows=len(y_true), notes=notes
    )


def _finite(values: dict[str, float]) -> dict[str, float]:
    bad = {name: value for name, value in values.items() if not math.isfinite(value)}
    if bad:
        raise ValueError(f"non-finite metric value(s) {bad}: are the predictions finite?")
    return values


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]
