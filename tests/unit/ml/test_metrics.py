"""Holdout metrics: scikit-learn's values, finite in every edge case."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from functions.common.config.dataset import Task
from functions.ml.metrics import (
    GREATER_IS_BETTER,
    MAX_CURVE_CLASSES,
    MAX_CURVE_POINTS,
    TASK_METRICS,
    Evaluation,
    evaluate_predictions,
    primary_metric,
)

CLASSES = ["no", "yes"]


def _binary(rows: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = np.where(rng.random(rows) < 0.35, "yes", "no")
    score = np.clip(0.35 * (y_true == "yes") + rng.random(rows) * 0.65, 0, 1)
    probabilities = np.column_stack([1 - score, score])
    labels = np.where(score >= 0.5, "yes", "no")
    return y_true, labels, probabilities


def _classified(
    y_true: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str] = CLASSES,
) -> Evaluation:
    return evaluate_predictions(
        task=Task.CLASSIFICATION,
        y_true=y_true,
        labels=labels,
        probabilities=probabilities,
        classes=classes,
    )


def test_binary_metrics_match_scikit_learn() -> None:
    y_true, labels, probabilities = _binary()

    evaluation = _classified(y_true, labels, probabilities)
    m = evaluation.metrics

    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, labels))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y_true, labels, average="macro"))
    assert m["precision_weighted"] == pytest.approx(
        skm.precision_score(y_true, labels, average="weighted")
    )
    assert m["recall_macro"] == pytest.approx(skm.recall_score(y_true, labels, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true == "yes", probabilities[:, 1]))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y_true, probabilities, labels=CLASSES))
    assert set(m) == set(GREATER_IS_BETTER) - {"rmse", "mae", "r2"}
    # `config check` refuses gate metrics outside TASK_METRICS: it is what each task reports.
    assert set(m) == set(TASK_METRICS[Task.CLASSIFICATION])
    assert evaluation.confusion_matrix == {
        "labels": CLASSES,
        "matrix": skm.confusion_matrix(y_true, labels, labels=CLASSES).tolist(),
    }
    assert evaluation.rows == len(y_true)


def test_binary_curves_are_downsampled_and_span_the_unit_square() -> None:
    y_true, labels, probabilities = _binary(rows=5_000)

    curves = _classified(y_true, labels, probabilities).curves

    roc, pr = curves["roc"], curves["pr"]
    assert curves["positive_class"] == "yes"
    assert 10 < len(roc["fpr"]) <= MAX_CURVE_POINTS and len(roc["fpr"]) == len(roc["tpr"])
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    assert roc["fpr"] == sorted(roc["fpr"])
    assert len(pr["precision"]) == len(pr["recall"]) <= MAX_CURVE_POINTS


def test_multiclass_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c"]
    y_true = rng.choice(classes, 300)
    probabilities = rng.dirichlet([1, 1, 1], 300)
    probabilities[np.arange(300), [classes.index(y) for y in y_true]] += 0.5
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = np.array(classes)[probabilities.argmax(axis=1)]

    evaluation = _classified(y_true, labels, probabilities, classes)

    expected_auc = skm.roc_auc_score(y_true, probabilities, multi_class="ovr", labels=classes)
    assert evaluation.metrics["roc_auc"] == pytest.approx(expected_auc)
    assert evaluation.metrics["f1_macro"] == pytest.approx(
        skm.f1_score(y_true, labels, average="macro")
    )
    per_class = evaluation.curves["per_class"]
    assert [entry["class"] for entry in per_class] == classes
    for index, entry in enumerate(per_class):
        positive = y_true == classes[index]
        auc = float(np.trapezoid(entry["roc"]["tpr"], entry["roc"]["fpr"]))
        assert auc == pytest.approx(skm.roc_auc_score(positive, probabilities[:, index]), abs=0.02)
        assert entry["pr"]["recall"][0] == 1.0 and entry["pr"]["precision"][-1] == 1.0
    assert set(evaluation.metrics) == set(TASK_METRICS[Task.CLASSIFICATION])
    assert primary_metric(Task.CLASSIFICATION, 3) == "f1_macro"


def test_a_single_class_holdout_still_gives_finite_metrics() -> None:
    y_true = np.array(["no"] * 20)
    probabilities = np.tile([0.7, 0.3], (20, 1))
    labels = np.array(["no"] * 15 + ["yes"] * 5)

    evaluation = _classified(y_true, labels, probabilities)

    assert all(math.isfinite(v) for v in evaluation.metrics.values())
    assert evaluation.metrics["roc_auc"] == 0.5
    assert any("roc_auc" in note for note in evaluation.notes)
    assert evaluation.curves == {}
    json.dumps(evaluation.to_dict(), allow_nan=False)


def test_a_label_the_model_never_saw_counts_as_a_confident_miss() -> None:
    y_true = np.array(["no", "yes", "maybe"])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])

    evaluation = _classified(y_true, np.array(["no", "yes", "no"]), probabilities)

    assert math.isfinite(evaluation.metrics["log_loss"])
    assert evaluation.metrics["log_loss"] > 10
    assert evaluation.confusion_matrix is not None
    assert evaluation.confusion_matrix["labels"] == ["no", "yes", "maybe"]
    assert evaluation.confusion_matrix["matrix"][2] == [1, 0, 0]


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    y_true = rng.normal(50, 10, 400)
    predicted = y_true + rng.normal(0, 3, 400)

    evaluation = evaluate_predictions(
        task=Task.REGRESSION, y_true=y_true, labels=predicted, probabilities=None, classes=None
    )

    assert evaluation.metrics == pytest.approx(
        {
            "rmse": skm.root_mean_squared_error(y_true, predicted),
            "mae": skm.mean_absolute_error(y_true, predicted),
            "r2": skm.r2_score(y_true, predicted),
        }
    )
    assert set(evaluation.metrics) == set(TASK_METRICS[Task.REGRESSION])
    residuals = evaluation.curves["residuals"]
    assert len(residuals["predicted"]) == len(residuals["residual"]) == MAX_CURVE_POINTS
    assert evaluation.confusion_matrix is None
    assert primary_metric(Task.REGRESSION, 0) == "rmse"
    assert primary_metric(Task.CLASSIFICATION, 2) == "roc_auc"


@pytest.mark.parametrize("y_true", [[5.0, 5.0, 5.0], [5.0]])
def test_degenerate_regression_holdouts_give_finite_metrics(y_true: list[float]) -> None:
    evaluation = evaluate_predictions(
        task=Task.REGRESSION,
        y_true=np.array(y_true),
        labels=np.array(y_true) + 1.0,
        probabilities=None,
        classes=None,
    )

    assert all(math.isfinite(v) for v in evaluation.metrics.values())
    assert evaluation.metrics["rmse"] == pytest.approx(1.0)


def test_an_empty_holdout_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rows"):
        evaluate_predictions(
            task=Task.REGRESSION,
            y_true=np.array([]),
            labels=np.array([]),
            probabilities=None,
            classes=None,
        )


def test_multiclass_curves_cover_the_most_frequent_classes_only_up_to_the_cap() -> None:
    rng = np.random.default_rng(3)
    classes = [f"class {i}" for i in range(MAX_CURVE_CLASSES + 3)]
    # The first class has the most held-out rows, the last the fewest.
    y_true = np.repeat(classes, [20 + 5 * (len(classes) - i) for i in range(len(classes))])
    probabilities = rng.dirichlet(np.ones(len(classes)), len(y_true))

    curves = _classified(
        y_true, np.array(classes)[probabilities.argmax(axis=1)], probabilities, classes
    ).curves

    assert [entry["class"] for entry in curves["per_class"]] == classes[:MAX_CURVE_CLASSES]
    assert curves["classes_with_curves_of"] == len(classes)
