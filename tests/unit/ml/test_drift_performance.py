"""Live performance from feedback labels (functions/ml/drift/performance.py: `live_performance`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
from sklearn.metrics import f1_score, mean_absolute_error, root_mean_squared_error

from functions.common.config.dataset import Task
from functions.ml.drift.performance import LivePerformance, class_label, live_performance


def _classification(
    labels: Sequence[object], predictions: Sequence[object], **reference: float
) -> LivePerformance:
    return live_performance(
        "classification",
        labels,
        predictions,
        reference_metrics=reference,
        tolerance=0.05,
        min_rows=4,
    )


def test_classification_metrics_match_the_usual_definitions() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c"], 500, p=[0.6, 0.3, 0.1])
    predictions = np.where(rng.random(500) < 0.8, labels, rng.choice(["a", "b", "d"], 500))

    live = live_performance(
        Task.CLASSIFICATION,
        labels,
        predictions,
        reference_metrics={"accuracy": 0.8, "f1_macro": 0.6},
        tolerance=0.05,
        min_rows=50,
    )

    assert live.rows == 500
    assert live.metrics["accuracy"] == pytest.approx(np.mean(labels == predictions))
    assert live.metrics["f1_macro"] == pytest.approx(f1_score(labels, predictions, average="macro"))
    assert live.changes["accuracy"] == pytest.approx(live.metrics["accuracy"] - 0.8)


def test_feedback_and_predicted_classes_match_across_types() -> None:
    labels = [1, "1", 1.0, True, 0, "0", 0.0, False, "true", " yes "]
    predictions = ["1", 1, True, 1.0, False, 0, "0", "0.0", 1, "yes"]

    live = _classification(labels, predictions, accuracy=1.0)

    assert live.metrics == {"accuracy": 1.0, "f1_macro": 1.0}
    assert live.verdict == "ok"
    assert [class_label(v) for v in (1, 1.0, "1", True, 2.5, "churn")] == [
        "1",
        "1",
        "1",
        "1",
        "2.5",
        "churn",
    ]


def test_rows_without_a_label_or_prediction_are_left_out() -> None:
    labels = ["yes", None, "no", float("nan"), "yes", "", "no", "yes"]
    predictions = ["yes", "no", "no", "yes", None, "no", "no", "yes"]

    live = _classification(labels, predictions, accuracy=0.9)

    assert live.rows == 4
    assert live.metrics["accuracy"] == 1.0
    assert "4 row(s) without a label or a prediction" in live.notes[0]


def test_a_classification_metric_below_reference_minus_tolerance_is_a_drop() -> None:
    labels = ["yes"] * 80 + ["no"] * 20
    predictions = ["yes"] * 70 + ["no"] * 10 + ["no"] * 20  # accuracy 0.9

    within = _classification(labels, predictions, accuracy=0.94)
    dropped = _classification(labels, predictions, accuracy=0.96, f1_macro=0.5)

    assert (within.verdict, within.dropped) == ("ok", ())
    assert (dropped.verdict, dropped.dropped) == ("drop", ("accuracy",))
    assert dropped.changes["accuracy"] == pytest.approx(-0.06)


def test_a_regression_error_above_reference_times_one_plus_tolerance_is_a_drop() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(60.0, 10.0, 400)
    predicted = truth + rng.normal(0.0, 5.0, 400)
    rmse = root_mean_squared_error(truth, predicted)
    mae = mean_absolute_error(truth, predicted)
    labels = [str(value) for value in truth]  # feedback arrives as text

    def judged(reference_rmse: float) -> LivePerformance:
        return live_performance(
            "regression",
            labels,
            predicted,
            reference_metrics={"rmse": reference_rmse, "mae": mae},
            tolerance=0.1,
            min_rows=50,
        )

    ok, dropped = judged(rmse / 1.09), judged(rmse / 1.11)
    assert ok.metrics == pytest.approx({"rmse": rmse, "mae": mae})
    assert (ok.verdict, ok.dropped) == ("ok", ())
    assert (dropped.verdict, dropped.dropped) == ("drop", ("rmse",))


def test_only_metrics_of_the_serving_model_are_compared() -> None:
    live = _classification(["a", "b"] * 5, ["a", "a"] * 5, roc_auc=0.9, accuracy=0.5)

    assert live.changes == {"accuracy": 0.0}
    assert live.verdict == "ok"
    assert "roc_auc is not measured live" in live.notes


def test_fewer_labelled_rows_than_min_rows_is_insufficient_data() -> None:
    live = _classification(["a", None, "b", "a"], ["b", "b", None, "b"], accuracy=0.9)

    assert (live.rows, live.verdict, live.dropped, live.changes) == (
        2,
        "insufficient_data",
        (),
        {},
    )
    empty = _classification([], [], accuracy=0.9)
    assert (empty.rows, empty.verdict, empty.metrics) == (0, "insufficient_data", {})
    json.dumps(empty.to_dict(), allow_nan=False)


def test_the_report_is_json_safe() -> None:
    live = live_performance(
        "regression",
        [1e308, -1e308, 0.0, 1.0],
        [-1e308, 1e308, 0.0, 1.0],
        reference_metrics={"rmse": 1.0, "mae": 1.0},
        tolerance=0.05,
        min_rows=1,
    )

    data = json.loads(json.dumps(live.to_dict(), allow_nan=False))
    assert data["verdict"] == "drop"
    assert data["metrics"]["rmse"] is None  # overflowed: reported as unknown


def test_labels_and_predictions_of_different_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        _classification(["a", "b", "c"], ["a", "b"])
