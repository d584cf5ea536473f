"""One model's predictions on the held-out rows, and the task's primary metric on any subset of
them (the metric the gate compares by default: roc_auc for binary classification, f1_macro for
multiclass, rmse for regression)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from functions.common.config.dataset import Task
from functions.ml.metrics import GREATER_IS_BETTER, primary_metric

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"


@dataclass(frozen=True)
class Scores:
    """`y_true` and the model's `labels` (and, for a classifier, `probabilities`, rows x
    `classes`)."""

    task: Task
    y_true: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray | None = None
    classes: Sequence[str] = ()

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.y_true):
            raise ValueError(f"{len(self.labels)} predictions for {len(self.y_true)} rows")
        if self.task is Task.CLASSIFICATION:
            if self.probabilities is None or not self.classes:
                raise ValueError("a classifier's insight needs its probabilities and classes")
            if self.probabilities.shape != (len(self.y_true), len(self.classes)):
                raise ValueError(
                    f"probabilities have shape {self.probabilities.shape}, expected "
                    f"({len(self.y_true)}, {len(self.classes)})"
                )

    @property
    def rows(self) -> int:
        return len(self.y_true)

    @property
    def kind(self) -> str:
        if self.task is Task.REGRESSION:
            return REGRESSION
        return BINARY if len(self.classes) == 2 else MULTICLASS

    @property
    def metric(self) -> str:
        return primary_metric(self.task, len(self.classes))

    @property
    def greater_is_better(self) -> bool:
        return GREATER_IS_BETTER[self.metric]

    @property
    def positive(self) -> np.ndarray:
        """Binary: whether each row's true label is the positive class (`classes[1]`)."""
        return np.asarray(self.y_true).astype(str) == str(self.classes[1])

    @property
    def predicted_positive(self) -> np.ndarray:
        return np.asarray(self.labels).astype(str) == str(self.classes[1])

    def value(self, mask: np.ndarray) -> float:
        """The primary metric on the rows `mask` selects. ROC AUC on rows of a single class is
        0.5 (no better than chance), as in `functions.ml.metrics`."""
        from sklearn import metrics as skm

        if self.task is Task.REGRESSION:
            error = np.asarray(self.labels, np.float64)[mask] - np.asarray(self.y_true)[mask]
            return float(np.sqrt(np.mean(error**2)))
        if self.kind == BINARY:
            assert self.probabilities is not None
            truth = self.positive[mask]
            if truth.all() or not truth.any():
                return 0.5
            return roc_auc(truth, self.probabilities[mask, 1])
        truth = np.asarray(self.y_true).astype(str)[mask]
        predicted = np.asarray(self.labels).astype(str)[mask]
        return float(skm.f1_score(truth, predicted, average="macro", zero_division=0))


def roc_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """The area under the ROC curve of `score` for the boolean `truth` (both classes present),
    as the Mann-Whitney statistic: the chance that a positive row scores above a negative one,
    ties counting half. The same value as scikit-learn's `roc_auc_score`, without its input
    validation, which costs more than the computation on a slice."""
    from scipy.stats import rankdata

    positives = int(truth.sum())
    negatives = len(truth) - positives
    ranks = rankdata(score)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))
