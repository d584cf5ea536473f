"""Label-free performance: a classifier's accuracy (and F1, ROC AUC) estimated from its own
calibrated probabilities before any label arrives, confidence-based (CBPE, as NannyML defines
it).

At train time `fit_calibration` fits, on the held-out rows' predicted probabilities and true
labels, an isotonic map from the model's probability of each class to the observed frequency of
that class (binary: of the positive class, the second of the model's classes; multiclass: one
map per class, one-vs-rest), and records the held-out rows' realized metrics as the reference.
The maps go into the reference profile (`calibration`), as the isotonic fit's breakpoints:
applying one is linear interpolation between them, clipped at the ends, exactly what
scikit-learn's `IsotonicRegression.predict` does.

In a drift check `EstimateAccumulator` calibrates every captured row's probabilities (a
multiclass row's calibrated probabilities are renormalized to add up to 1) and sums the
expected confusion matrix: a row predicted as class c adds its calibrated probability of c to
c's expected true positives and the rest to c's false positives, and its calibrated probability
of every other class k to k's false negatives. Accuracy is the mean calibrated probability of
the predicted class; F1 per class is 2TP / (2TP + FP + FN) of the expected counts. ROC AUC
(binary) comes from the raw positive scores binned finely (`SCORE_BINS`), each bin carrying its
expected positives and negatives: the probability that a positive outscores a negative, ties
counted half. The accumulator holds sums only, so a window of any size is read in chunks.

The estimate is right while the model stays calibrated on the live data: under covariate shift
(inputs move, the relation between inputs and label does not) it is; under concept drift it is
not, and only feedback labels tell.

numpy only: the drift check imports this module; scikit-learn is imported inside
`fit_calibration`, which runs at train time only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from functions.ml.drift.performance import LivePerformance, class_label

METHOD = "cbpe"
CALIBRATION = "isotonic"
MAX_CALIBRATION_ROWS = 20_000
"""Held-out rows the calibration is fitted on, at most (a seeded sample of larger splits)."""
MAX_MAP_POINTS = 512
"""Breakpoints of one stored calibration map, at most (a finer fit is resampled)."""
SCORE_BINS = 1_000
"""Bins of the raw positive score for the ROC AUC estimate."""
JUDGED = ("accuracy", "f1_macro")
"""The estimated metrics a drop is judged on. The positive class's F1 and ROC AUC are
estimated and reported but not judged: on windows of a few hundred rows drawn from the
held-out distribution they alone vary by more than 0.05 (docs/drift.md)."""

EstimateVerdict = Literal["ok", "drop", "insufficient_data", "unavailable"]


@dataclass(frozen=True)
class PerformanceEstimate(LivePerformance):
    """A window's estimated metrics against the held-out (evaluation) metrics, shaped as the
    live ones: `changes` are estimate minus reference, `dropped` the metrics estimated worse
    by more than the tolerance. `unavailable`: no estimate can be made (regression, a
    reference profile without calibration, no captured probabilities); `notes` say why."""

    verdict: EstimateVerdict  # type: ignore[assignment]
    method: str = METHOD


def unavailable(reason: str, rows: int = 0) -> PerformanceEstimate:
    """The estimate of a window that cannot have one, saying why."""
    return PerformanceEstimate(rows, "unavailable", {}, {}, {}, (), (reason,))


def fit_calibration(
    probabilities: np.ndarray,
    classes: Sequence[Any],
    labels: Sequence[Any] | np.ndarray,
    *,
    seed: int,
) -> dict[str, Any] | None:
    """The reference profile's `calibration` section from the held-out rows' predicted
    `probabilities` (rows x classes, in `classes` order) and true `labels`:
    `{"method": "isotonic", "rows", "classes", "positive_class" (binary; else null),
    "maps": {class: {"x": [...], "y": [...]}}` (binary: the positive class only),
    `"reference": {metric: realized value on the held-out rows}}`. None when there is nothing
    to calibrate on (no labelled row, or a single class)."""
    from sklearn.isotonic import IsotonicRegression

    names = [class_label(c) or str(c) for c in classes]
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=object)
    if len(names) < 2 or probabilities.ndim != 2 or probabilities.shape[1] != len(names):
        return None
    if len(labels) > MAX_CALIBRATION_ROWS:
        picked = np.sort(
            np.random.default_rng(seed).choice(len(labels), MAX_CALIBRATION_ROWS, replace=False)
        )
        probabilities, labels = probabilities[picked], labels[picked]
    truth = np.array(class_labels(labels), dtype=object)
    kept = np.array([t is not None for t in truth], dtype=bool)
    kept &= np.isfinite(probabilities).all(axis=1)
    probabilities, truth = probabilities[kept], truth[kept]
    if len(truth) < 2:
        return None
    binary = len(names) == 2
    mapped = names[1:] if binary else names
    maps = {}
    for name in mapped:
        column = names.index(name)
        fit = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        fit.fit(probabilities[:, column], (truth == name).astype(np.float64))
        maps[name] = _stored_map(fit.X_thresholds_, fit.y_thresholds_)
    predicted = np.array(names, dtype=object)[np.argmax(probabilities, axis=1)]
    return {
        "method": CALIBRATION,
        "rows": len(truth),
        "classes": names,
        "positive_class": names[1] if binary else None,
        "maps": maps,
        "reference": _realized(truth, predicted, probabilities, names),
    }


def class_labels(values: Sequence[Any] | np.ndarray) -> list[str | None]:
    """`class_label` of each value, each distinct value normalized once."""
    seen: dict[Any, str | None] = {}
    labels = []
    for value in values:
        try:
            label = seen[value]
        except KeyError:
            label = seen[value] = class_label(value)
        except TypeError:  # unhashable: a list or a dict is no class
            label = class_label(value)
        labels.append(label)
    return labels


def _stored_map(x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    if len(x) > MAX_MAP_POINTS:
        grid = np.quantile(x, np.linspace(0.0, 1.0, MAX_MAP_POINTS))
        x, y = np.unique(grid), np.interp(np.unique(grid), x, y)
    return {"x": [float(v) for v in x], "y": [float(v) for v in y]}


def _realized(
    truth: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray, names: list[str]
) -> dict[str, float]:
    """The held-out rows' metrics, as the estimate names them."""
    from sklearn.metrics import f1_score, roc_auc_score

    metrics = {
        "accuracy": float(np.mean(truth == predicted)),
        "f1_macro": float(
            f1_score(truth.astype(str), predicted.astype(str), average="macro", zero_division=0)
        ),
    }
    if len(names) == 2:
        positive = truth == names[1]
        metrics["f1"] = float(
            f1_score(positive, predicted == names[1], average="binary", zero_division=0)
        )
        if 0 < positive.sum() < len(positive):
            metrics["roc_auc"] = float(roc_auc_score(positive, probabilities[:, 1]))
    return metrics


class EstimateAccumulator:
    """The expected confusion matrix of a window's captured rows, added chunk by chunk, against
    a reference profile's `calibration` section (`fit_calibration`)."""

    def __init__(self, calibration: Mapping[str, Any]) -> None:
        self.classes: list[str] = [str(c) for c in calibration["classes"]]
        self.binary = len(self.classes) == 2
        self.maps = {
            str(name): (np.asarray(m["x"], dtype=np.float64), np.asarray(m["y"], dtype=np.float64))
            for name, m in calibration["maps"].items()
        }
        self.reference = {str(k): float(v) for k, v in (calibration.get("reference") or {}).items()}
        width = len(self.classes)
        self.rows = 0
        self.without_probabilities = 0
        self.correct = 0.0
        self.true_positives = np.zeros(width)
        self.false_positives = np.zeros(width)
        self.false_negatives = np.zeros(width)
        self.bin_rows = np.zeros(SCORE_BINS)
        self.bin_positives = np.zeros(SCORE_BINS)

    def add(
        self,
        predictions: Sequence[Any],
        probabilities: Sequence[Sequence[float]] | None,
        classes: Sequence[Any] | None = None,
    ) -> None:
        """Rows of one capture record (or several with the same `classes`): the served
        `predictions` and their `probabilities` in `classes` order (None: the profile's).
        Rows without usable probabilities are counted, not estimated."""
        if probabilities is None:
            self.without_probabilities += len(predictions)
            return
        try:
            raw = self._columns(np.asarray(probabilities, dtype=np.float64), classes)
        except (TypeError, ValueError):  # ragged or not numbers
            raw = None
        if raw is None or len(raw) != len(predictions):
            self.without_probabilities += len(predictions)
            return
        usable = np.isfinite(raw).all(axis=1)
        self.without_probabilities += int((~usable).sum())
        raw = raw[usable]
        if not len(raw):
            return
        calibrated = self._calibrate(raw)
        index = {name: i for i, name in enumerate(self.classes)}
        kept = [p for p, ok in zip(predictions, usable, strict=True) if ok]
        served = [index.get(label or "") for label in class_labels(kept)]
        argmax = np.argmax(raw, axis=1)
        predicted = np.array(
            [s if s is not None else int(a) for s, a in zip(served, argmax, strict=True)],
            dtype=np.intp,
        )
        rows = np.arange(len(raw))
        chosen = np.zeros_like(calibrated, dtype=bool)
        chosen[rows, predicted] = True
        self.rows += len(raw)
        self.correct += float(calibrated[rows, predicted].sum())
        self.true_positives += np.where(chosen, calibrated, 0.0).sum(axis=0)
        self.false_positives += np.where(chosen, 1.0 - calibrated, 0.0).sum(axis=0)
        self.false_negatives += np.where(chosen, 0.0, calibrated).sum(axis=0)
        if self.binary:
            bins = np.clip((raw[:, 1] * SCORE_BINS).astype(np.intp), 0, SCORE_BINS - 1)
            self.bin_rows += np.bincount(bins, minlength=SCORE_BINS)
            self.bin_positives += np.bincount(bins, weights=calibrated[:, 1], minlength=SCORE_BINS)

    def _columns(self, raw: np.ndarray, classes: Sequence[Any] | None) -> np.ndarray | None:
        """The probabilities in the profile's class order; None when they cannot be."""
        if raw.ndim != 2:
            return None
        if classes is None:
            return raw if raw.shape[1] == len(self.classes) else None
        names = [class_label(c) or str(c) for c in classes]
        if len(names) != raw.shape[1] or any(c not in names for c in self.classes):
            return None
        return raw[:, [names.index(c) for c in self.classes]]

    def _calibrate(self, raw: np.ndarray) -> np.ndarray:
        if self.binary:
            x, y = self.maps[self.classes[1]]
            positive = np.interp(raw[:, 1], x, y)
            return np.column_stack([1.0 - positive, positive])
        calibrated = np.column_stack(
            [np.interp(raw[:, i], *self.maps[name]) for i, name in enumerate(self.classes)]
        )
        totals = calibrated.sum(axis=1, keepdims=True)
        # A row every map sends to 0 keeps its raw probabilities.
        return np.where(totals > 0, calibrated / np.where(totals > 0, totals, 1.0), raw)

    def metrics(self) -> dict[str, float]:
        """The estimated metrics of the rows added (empty without rows)."""
        if not self.rows:
            return {}
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        f1 = np.divide(
            2 * self.true_positives,
            denominator,
            out=np.zeros_like(denominator),
            where=denominator > 0,
        )
        estimated = {"accuracy": self.correct / self.rows, "f1_macro": float(f1.mean())}
        if self.binary:
            estimated["f1"] = float(f1[1])
            auc = self._roc_auc()
            if auc is not None:
                estimated["roc_auc"] = auc
        return estimated

    def _roc_auc(self) -> float | None:
        positives = self.bin_positives
        negatives = self.bin_rows - self.bin_positives
        total_positive, total_negative = positives.sum(), negatives.sum()
        if total_positive <= 0 or total_negative <= 0:
            return None
        # Bins from the highest score down: a negative is outscored by every positive above its
        # bin and, half the time, by one in its own bin.
        above = np.cumsum(positives[::-1])[::-1] - positives
        wins = float(np.sum(negatives * (above + positives / 2)))
        return wins / float(total_positive * total_negative)

    def result(self, *, tolerance: float | None, min_rows: int) -> PerformanceEstimate:
        """The estimate against the reference: a drop is an estimated `JUDGED` metric
        (accuracy, macro F1) below its reference by more than `tolerance` (None: never a
        drop); fewer than `min_rows` rows with probabilities: `insufficient_data`."""
        notes = []
        if self.without_probabilities:
            notes.append(
                f"{self.without_probabilities} row(s) without usable probabilities left out"
            )
        estimated = self.metrics()
        if self.rows < min_rows:
            notes.append(f"{self.rows} rows with probabilities < min_rows {min_rows}")
            return PerformanceEstimate(
                self.rows,
                "insufficient_data",
                estimated,
                self.reference,
                {},
                (),
                tuple(notes),
            )
        compared = [name for name in estimated if name in self.reference]
        changes = {name: estimated[name] - self.reference[name] for name in compared}
        dropped = tuple(
            name
            for name in compared
            if name in JUDGED and tolerance is not None and changes[name] < -tolerance
        )
        if tolerance is None:
            notes.append("drift.estimate_tolerance is unset: the estimate raises no alarm")
        verdict: EstimateVerdict = "drop" if dropped else "ok"
        return PerformanceEstimate(
            self.rows,
            verdict,
            estimated,
            self.reference,
            changes,
            dropped,
            tuple(notes),
        )


def window_estimate(
    calibration: Mapping[str, Any] | None,
    task: str,
    predictions: Sequence[Any],
    probabilities: Sequence[Sequence[float]] | None,
    classes: Sequence[Any] | None = None,
    *,
    tolerance: float | None,
    min_rows: int,
) -> PerformanceEstimate:
    """The estimate of one batch of rows in one call (`EstimateAccumulator` for chunks):
    `unavailable` for a regression model or a profile without `calibration`."""
    if str(getattr(task, "value", task)) != "classification":
        return unavailable("regression: no label-free estimate (it needs class probabilities)")
    if not calibration:
        return unavailable(NO_CALIBRATION)
    accumulator = EstimateAccumulator(calibration)
    accumulator.add(predictions, probabilities, classes)
    return accumulator.result(tolerance=tolerance, min_rows=min_rows)


NO_CALIBRATION = (
    "the reference profile has no calibration (written before label-free estimates, or the "
    "held-out rows held a single class): no estimate"
)
